# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The taxonomy, interactive
#
# The survey {cite}`dagnaw2025survey` sorts XAI methods for biomedical images into three
# categories and eight families (its Fig. 2 and Section 2). `medxai_lite.taxonomy` holds that
# taxonomy as data: each method with its family, the year and original paper, and the number
# under which the survey cites it. Everything on this page is drawn from that table.

# %% tags=["remove-cell"]
# Colab or a fresh runtime: install medxai_lite from the book's repository when it is missing.
try:
    import medxai_lite  # noqa: F401
except ImportError:
    import subprocess
    import sys
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q",
                           "medxai_lite[explain] @ git+https://github.com/medxai-book/medxai-book"])

# %% tags=["parameters"]
# Parameters (papermill can override them).
include_supplementary = True   # methods the survey names outside Section 2 (e.g. in its Table 11)

# %%
import sys

import matplotlib.pyplot as plt
import pandas as pd
import plotly.express as px
import plotly.io as pio

if "google.colab" not in sys.modules:   # Colab picks its own renderer; the book needs HTML output
    pio.renderers.default = "plotly_mimetype+notebook_connected"

from medxai_lite.taxonomy import CATEGORIES, FAMILIES, taxonomy_frame
from medxai_lite.book import chapter_timer, glue

timer = chapter_timer()   # this chapter's wall time, shown in its opening

frame = taxonomy_frame(include_supplementary=include_supplementary)
print(f"{len(frame)} methods in {frame['family'].nunique()} families and {frame['category'].nunique()} categories")

# %% [markdown]
# ## Categories, families, methods
#
# Click a sector to zoom into it; hover over a method to see its year, its original paper and
# a one-line summary. The sector sizes count methods, not how often each method is used.

# %%
fig = px.sunburst(
    frame.assign(count=1, year=frame["year"].astype("string").fillna("n/a")),
    path=["category", "family", "method"], values="count", color="family",
    hover_data={"year": True, "citation": True, "description": True, "count": False},
    title="XAI methods for biomedical images: the survey's taxonomy",
)
fig.update_traces(insidetextorientation="radial")
fig.update_layout(height=700, margin=dict(t=60, l=10, r=10, b=10))
fig.show()

# %% [markdown]
# ## How many methods per family, and when they appeared
#
# The same table as a static figure: the number of methods in each family (those the survey's
# Section 2 discusses, and with `include_supplementary` also those it names only elsewhere, such
# as in its Table 11), and the publication year of each method's original paper. Which families are largest and which
# are youngest is read off the table below, printed by the run rather than written in advance.

# %%
family_order = [f for _, f in FAMILIES]
counts = frame.groupby("family").size().reindex(family_order)
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [1, 1.4]})
colors = plt.cm.tab10(range(len(family_order)))
ax1.barh(family_order[::-1], counts.values[::-1], color=colors[::-1])
ax1.set_xlabel("number of methods")
ax1.set_title("Methods per family")
for y, v in enumerate(counts.values[::-1]):
    ax1.text(v + 0.1, y, str(v), va="center", fontsize=8)
dated = frame.dropna(subset=["year"])
for k, fam in enumerate(family_order):
    years = dated.loc[dated["family"] == fam, "year"].astype(int)
    ax2.scatter(years, [k] * len(years), color=colors[k], s=40, alpha=0.8)
ax2.set_yticks(range(len(family_order)), family_order)
ax2.invert_yaxis()
ax2.set_xlabel("year of the original paper")
ax2.set_title("When the methods appeared")
ax2.grid(axis="x", alpha=0.3)
fig.tight_layout()
plt.show()

years_by_family = dated.assign(year=dated["year"].astype(int)).groupby("family")["year"]
by_family = pd.DataFrame({"methods": counts, "median year": years_by_family.median(),
                          "first": years_by_family.min(), "latest": years_by_family.max()}).reindex(family_order)
largest = counts.sort_values(ascending=False)
median = by_family["median year"]
youngest, oldest = median[median == median.max()], median[median == median.min()]   # ties are named together
print(f"Largest families: {largest.index[0]} ({largest.iloc[0]} methods), {largest.index[1]} ({largest.iloc[1]}).")
print(f"Youngest by median year of the original papers ({median.max():g}): {', '.join(youngest.index)}; "
      f"oldest ({median.min():g}): {', '.join(oldest.index)}.")
in_section_2 = taxonomy_frame(include_supplementary=False).groupby("family").size()
print(f"CAM-based methods discussed in the survey's Section 2: {in_section_2['CAM-based']}"
      f" ({counts['CAM-based'] - in_section_2['CAM-based']} more named elsewhere in the survey)")
others = in_section_2.drop("CAM-based")
glue("tax_cam_sentence", f"{in_section_2['CAM-based']} members of this family in its Section 2, "
     + ("more than of any other" if in_section_2["CAM-based"] > others.max() else
        f"as many as or fewer than {others.idxmax()} ({others.max()})"), display=False)
by_family.style.format({"median year": "{:g}"})   # a median of an even count can fall on .5

# %% [markdown]
# ## The full table
#
# Each method with its family, the original paper (key into the book's bibliography) and the
# survey's reference number.

# %%
pd.set_option("display.max_colwidth", 90)
frame[["category", "family", "method", "year", "survey_ref", "description"]].style.hide(axis="index")

# %% [markdown]
# ## Exercises
#
# ```{exercise-start}
# :label: tax-ex-families
# ```
#
# With `taxonomy_frame()`, list for each family its oldest method (by the year of the original
# paper) and the share of its methods published in 2020 or later. Which family has the largest
# share of recent methods in this table?
#
# ```{exercise-end}
# ```

# %% [markdown]
# ```{solution-start} tax-ex-families
# :class: dropdown
# ```

# %%
dated_methods = frame.dropna(subset=["year"]).assign(year=lambda d: d["year"].astype(int))
oldest = dated_methods.loc[dated_methods.groupby("family")["year"].idxmin(), ["family", "method", "year"]]
recent = dated_methods.groupby("family")["year"].apply(lambda y: (y >= 2020).mean()).rename("share from 2020")
answer = oldest.set_index("family").join(recent).reindex(family_order)
print(f"Largest share of methods from 2020 on: {recent.idxmax()} ({recent.max():.0%}).")
answer.style.format({"share from 2020": "{:.0%}"})

# %% [markdown]
# The table counts the methods this book records, not every paper in the field; the survey's
# modality tables count applications instead, which is why the atlas can rank families
# differently.
#
# ```{solution-end}
# ```
#
# ```{exercise-start}
# :label: tax-ex-axes
# ```
#
# Place Grad-CAM, LIME and a concept bottleneck model on the three axes of the taxonomy page
# (intrinsic or post hoc, model-specific or model-agnostic, local or global).
#
# ```{exercise-end}
# ```
#
# ```{solution-start} tax-ex-axes
# :class: dropdown
# ```
#
# - **Grad-CAM**: post hoc; model-specific (it needs a convolutional layer and gradients); local
#   (one map per image and class).
# - **LIME**: post hoc; model-agnostic (it only calls the model on perturbed inputs); local.
# - **Concept bottleneck model**: intrinsic (the prediction passes through the named concepts);
#   model-specific by construction; both local (the concepts predicted for one image) and global
#   (the weights from concepts to classes hold for every image).
#
# ```{solution-end}
# ```
#
# ## What to remember
#
# - The survey sorts XAI methods into three categories and eight families by *what* they return:
#   maps, other objects (examples, concepts, text), or the geometry of the latent space.
# - Intrinsic or post hoc, model-specific or agnostic, local or global are separate axes that cut
#   across the families.
# - Every method the book runs carries its family here, so a method named in a paper leads to the
#   chapter that runs it.

# %% [markdown]
# ```{bibliography}
# :filter: docname in docnames
# ```

# %% tags=["remove-input"]
timer.glue()
