"""The registry of public biomedical datasets: one :class:`DatasetSpec` per dataset.

Five datasets are registered in :data:`PUBLIC_DATASETS`:

==========================  ======================================  ========  =====
name                        what                                    classes   masks
==========================  ======================================  ========  =====
``brain-tumor-mri``         Kaggle "Brain Tumor Classification      4         no
                            (MRI)" (Bhuvaji et al.), T1 MRI slices
``figshare-brain-tumor``    Cheng et al. 2015, figshare 1512427,    3         yes
                            T1-CE MRI slices, MATLAB v7.3 files
``ham10000``                HAM10000 dermoscopy (Tschandl et al.    7         yes
                            2018), lesion masks published later
``isic-benign-malignant``   Kaggle "Skin Cancer: Malignant vs.      2         no
                            Benign" (ISIC Archive images)
``chest-xray-pneumonia``    Kermany et al. 2018 paediatric chest    2         no
                            X-rays, NORMAL / PNEUMONIA
==========================  ======================================  ========  =====

A spec holds what the book cites and shows (title, citation, licence, homepage, modality,
classes, masks), where the files come from (its :class:`~medxai_lite.data.remote.Source`
list, and the file names a mirror serves), and the preparer that turns the downloads into the
prepared layout (from :mod:`medxai_lite.data.prepare`). :func:`get_spec` looks one up by name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .prepare import (
    prepare_brain_tumor_mri,
    prepare_chest_xray_pneumonia,
    prepare_figshare_brain_tumor,
    prepare_ham10000,
    prepare_isic_benign_malignant,
)
from .remote import RemoteFile, Source

__all__ = ["DatasetSpec", "PUBLIC_DATASETS", "get_spec"]


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the package knows about one public dataset.

    ``checksums`` maps a file name to a SHA-256 / MD5 published by the source and copied from
    it; it is empty where the source publishes none (then the first download is recorded in
    ``DATA/checksums.lock.json``). figshare and Dataverse publish MD5s through their APIs,
    which :meth:`Source.resolve` reads at download time.
    """

    name: str
    title: str
    citation: str
    modality: str
    classes: tuple[str, ...]
    has_masks: bool
    licence: str
    homepage: str
    sources: tuple[Source, ...]
    mirror_files: tuple[str, ...]
    approx_size_bytes: int
    prepare: Callable[..., None]
    grayscale: bool = False
    checksums: dict = field(default_factory=dict)
    notes: str = ""

    @property
    def kaggle_slug(self) -> str | None:
        """The main Kaggle ``owner/name`` for this dataset, if any."""
        for s in self.sources:
            if s.kind == "kaggle":
                return s.ref
        return None

    @property
    def source_labels(self) -> tuple[str, ...]:
        seen = []
        for s in self.sources:
            if s.label not in seen:
                seen.append(s.label)
        return tuple(seen)

    def sources_for(self, label: str) -> tuple[Source, ...]:
        return tuple(s for s in self.sources if s.label == label)



_GiB = 1 << 30
_MiB = 1 << 20

PUBLIC_DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec(
            name="brain-tumor-mri",
            title="Brain Tumor Classification (MRI)",
            citation="S. Bhuvaji, A. Kadam, P. Bhumkar, S. Dedge, S. Kanchan: Brain Tumor "
                     "Classification (MRI), Kaggle, 2020. doi:10.34740/KAGGLE/DSV/1183165",
            modality="MRI",
            classes=("glioma", "meningioma", "no_tumor", "pituitary"),
            has_masks=False,
            licence="see source (the Kaggle page states the licence)",
            homepage="https://www.kaggle.com/datasets/sartajbhuvaji/brain-tumor-classification-mri",
            sources=(
                Source("github", "url", "https://github.com/SartajBhuvaji/Brain-Tumor-Classification-DataSet",
                       files=(RemoteFile(
                           "Brain-Tumor-Classification-DataSet-master.zip",
                           "https://github.com/SartajBhuvaji/Brain-Tumor-Classification-DataSet/"
                           "archive/refs/heads/master.zip"),)),
                Source("kaggle", "kaggle", "sartajbhuvaji/brain-tumor-classification-mri"),
            ),
            mirror_files=("brain-tumor-classification-mri.zip",),
            approx_size_bytes=100 * _MiB,
            prepare=prepare_brain_tumor_mri,
            grayscale=True,
            notes="The dataset of the Chaddad et al. experiment. The GitHub repository is the "
                  "authors' own open copy (no account needed); Kaggle needs credentials.",
        ),
        DatasetSpec(
            name="figshare-brain-tumor",
            title="Brain tumor dataset (Cheng et al.)",
            citation="J. Cheng et al., Enhanced performance of brain tumor classification via tumor "
                     "region augmentation and partition, PLoS ONE 10(10): e0140381, 2015 "
                     "(doi:10.1371/journal.pone.0140381); data: figshare, "
                     "doi:10.6084/m9.figshare.1512427",
            modality="MRI",
            classes=("meningioma", "glioma", "pituitary"),
            has_masks=True,
            licence="CC BY 4.0 (as given on the figshare record; see source)",
            homepage="https://figshare.com/articles/dataset/brain_tumor_dataset/1512427",
            sources=(
                Source("figshare", "figshare", "1512427", api="https://api.figshare.com/v2",
                       wanted=("brainTumorDataPublic_*.zip",)),
            ),
            mirror_files=("brainTumorDataPublic_1-766.zip", "brainTumorDataPublic_767-1532.zip",
                          "brainTumorDataPublic_1533-2298.zip", "brainTumorDataPublic_2299-3064.zip"),
            approx_size_bytes=880 * _MiB,
            prepare=prepare_figshare_brain_tumor,
            grayscale=True,
            notes="3064 T1-weighted contrast-enhanced slices of 233 patients; labels 1 meningioma, "
                  "2 glioma, 3 pituitary; tumour masks. MD5 checksums come from the figshare API.",
        ),
        DatasetSpec(
            name="ham10000",
            title="HAM10000 dermoscopic images with lesion segmentations",
            citation="P. Tschandl, C. Rosendahl, H. Kittler: The HAM10000 dataset, Sci. Data 5, "
                     "180161 (2018); data: Harvard Dataverse, doi:10.7910/DVN/DBW86T",
            modality="dermoscopy",
            classes=("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"),
            has_masks=True,
            licence="CC BY-NC-SA 4.0",
            homepage="https://doi.org/10.7910/DVN/DBW86T",
            sources=(
                Source("dataverse", "dataverse", "doi:10.7910/DVN/DBW86T", api="https://dataverse.harvard.edu",
                       wanted=("HAM10000_images_part_1*", "HAM10000_images_part_2*", "HAM10000_metadata*",
                               "HAM10000_segmentations_lesion_tschandl*")),
                Source("kaggle", "kaggle", "kmader/skin-cancer-mnist-ham10000"),
                Source("kaggle", "kaggle", "tschandl/ham10000-lesion-segmentations"),
            ),
            mirror_files=("HAM10000_images_part_1.zip", "HAM10000_images_part_2.zip",
                          "HAM10000_metadata.csv", "HAM10000_segmentations_lesion_tschandl.zip"),
            approx_size_bytes=3 * _GiB,
            prepare=prepare_ham10000,
            notes="10015 images; also in the ISIC Archive (ISIC 2018 task 3 training set). "
                  "MD5 checksums come from the Dataverse API.",
        ),
        DatasetSpec(
            name="isic-benign-malignant",
            title="Skin Cancer: Malignant vs. Benign (ISIC Archive images)",
            citation="C. Fanconi: Skin Cancer: Malignant vs. Benign, Kaggle, 2019; images from "
                     "the ISIC Archive (https://www.isic-archive.com)",
            modality="dermoscopy",
            classes=("benign", "malignant"),
            has_masks=False,
            licence="see source (images from the ISIC Archive; the Kaggle page states the licence)",
            homepage="https://www.kaggle.com/datasets/fanconic/skin-cancer-malignant-vs-benign",
            sources=(Source("kaggle", "kaggle", "fanconic/skin-cancer-malignant-vs-benign"),),
            mirror_files=("skin-cancer-malignant-vs-benign.zip",),
            approx_size_bytes=350 * _MiB,
            prepare=prepare_isic_benign_malignant,
        ),
        DatasetSpec(
            name="chest-xray-pneumonia",
            title="Chest X-Ray Images (Pneumonia), Kermany et al.",
            citation="D. S. Kermany et al., Identifying medical diagnoses and treatable diseases by "
                     "image-based deep learning, Cell 172(5), 2018; data: Mendeley Data, "
                     "doi:10.17632/rscbjbr9sj",
            modality="X-ray",
            classes=("normal", "pneumonia"),
            has_masks=False,
            licence="CC BY 4.0 (as given on the Mendeley Data record; see source)",
            homepage="https://doi.org/10.17632/rscbjbr9sj",
            sources=(
                Source("kaggle", "kaggle", "paultimothymooney/chest-xray-pneumonia"),
                Source("mendeley", "manual", "https://data.mendeley.com/datasets/rscbjbr9sj",
                       files=(RemoteFile("ChestXRay2017.zip", "https://data.mendeley.com/datasets/rscbjbr9sj"),)),
            ),
            mirror_files=("chest-xray-pneumonia.zip",),
            approx_size_bytes=2400 * _MiB,
            prepare=prepare_chest_xray_pneumonia,
            grayscale=True,
            notes="Kaggle splits train / val / test (val holds only 16 images); the Mendeley "
                  "archive has train / test only (val is then held out of train by patient).",
        ),
    ]
}


def get_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of ``name``; ``ValueError`` listing the valid names otherwise."""
    if name not in PUBLIC_DATASETS:
        raise ValueError(f"unknown public dataset {name!r}; valid names: {', '.join(PUBLIC_DATASETS)}")
    return PUBLIC_DATASETS[name]
