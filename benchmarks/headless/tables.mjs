// Open every page of the built book in headless Chromium at a given window width and report,
// for each table, whether it fits the reading column. Called by ../check_table_widths.py.
// Usage: node tables.mjs HTML_DIR WIDTH SHOT_DIR page1.html page2.html ...
import chromium from "@sparticuz/chromium";
import puppeteer from "puppeteer-core";
import path from "node:path";

const [htmlDir, width, shotDir, ...pages] = process.argv.slice(2);
const browser = await puppeteer.launch({args: chromium.args, executablePath: await chromium.executablePath(),
                                        headless: "shell"});
const out = [];
try {
  const page = await browser.newPage();
  await page.setViewport({width: Number(width), height: 1000});
  for (const rel of pages) {
    await page.goto("file://" + path.resolve(htmlDir, rel), {waitUntil: "networkidle0", timeout: 60000});
    const tables = await page.evaluate(() => {
      const column = document.querySelector("article.bd-article") || document.querySelector("main") || document.body;
      const colBox = column.getBoundingClientRect();
      return [...column.querySelectorAll("table")].filter((t) => t.offsetParent !== null).map((t, i) => {
        const box = t.getBoundingClientRect();
        // the nearest ancestor that clips or scrolls: the part of the table a reader sees without scrolling
        let clip = t.parentElement;
        while (clip && clip !== column && getComputedStyle(clip).overflowX === "visible") clip = clip.parentElement;
        const visible = clip && clip !== column ? clip.getBoundingClientRect().right : colBox.right;
        const caption = (t.querySelector("caption")?.innerText || t.querySelector("th")?.innerText || "").slice(0, 60);
        // the heading of the nearest section holding the table: where a reader finds it on the page
        const section = t.closest("section");
        const heading = (section?.querySelector(":scope > h1, :scope > h2, :scope > h3, :scope > h4")?.innerText || "")
          .replace(/#$/, "").trim().slice(0, 60);
        t.setAttribute("data-table-index", String(i));
        return {index: i, caption, section: heading, table_width: Math.round(box.width), column_width: Math.round(colBox.width),
                room_px: Math.round(Math.min(visible, colBox.right) - box.left),
                overflow_px: Math.round(Math.max(box.right - Math.min(visible, colBox.right), 0)), top: Math.round(box.top + window.scrollY)};
      });
    });
    for (const t of tables) {
      if (t.overflow_px > 1 && shotDir) {
        const el = await page.$(`table[data-table-index="${t.index}"]`);
        const name = rel.replace(/[\/.]/g, "_") + `_table${t.index}.png`;
        await page.evaluate((y) => window.scrollTo(0, Math.max(y - 40, 0)), t.top);
        await page.screenshot({path: path.join(shotDir, name)});
        t.screenshot = name;
      }
      out.push({page: rel, ...t});
    }
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
