"""The index page of a folder of ``cre report`` pages: sortable, filterable, offline."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from worker.report.evidence import num
from worker.report.markup import esc, fmt
from worker.report.page import read_report_meta

__all__ = ["INDEX_FILE", "render_index", "write_index"]

logger = logging.getLogger(__name__)


INDEX_FILE = "index.html"


_INDEX_JS = """
(function(){
var table=document.getElementById('reports'),body=table.tBodies[0];
var rows=Array.prototype.slice.call(body.rows);
var fl=document.getElementById('f-label'),fs=document.getElementById('f-status');
var count=document.getElementById('count');
function filter(){var n=0;rows.forEach(function(r){
var ok=(!fl.value||r.dataset.label===fl.value)&&(!fs.value||r.dataset.status===fs.value);
r.hidden=!ok;if(ok)n++;});count.textContent=n+' of '+rows.length;}
var dir={};
Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th){
if(!th.dataset.key)return;th.addEventListener('click',function(){
var k=th.dataset.key,num=th.dataset.num==='1',d=dir[k]=-(dir[k]||(num?1:-1));
rows.sort(function(a,b){var x=a.dataset[k],y=b.dataset[k];
if(num){x=x===''?-1:parseFloat(x);y=y===''?-1:parseFloat(y);return d*(x-y);}
return d*String(x).localeCompare(String(y));});
rows.forEach(function(r){body.appendChild(r);});
Array.prototype.forEach.call(table.tHead.rows[0].cells,function(c){
c.classList.remove('asc','desc');});th.classList.add(d>0?'asc':'desc');});});
fl.addEventListener('change',filter);fs.addEventListener('change',filter);filter();
})();
"""


_INDEX_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
color:#111827;margin:0}
main{max-width:1200px;margin:0 auto;padding:20px 24px}
h1{font-size:20px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:5px 10px;border-bottom:1px solid #e5e7eb;vertical-align:top}
th[data-key]{cursor:pointer;user-select:none;white-space:nowrap}
th.asc::after{content:" ▲"}th.desc::after{content:" ▼"}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.pill{padding:1px 8px;border-radius:9px;color:#fff;font-size:12px;white-space:nowrap}
.fake{background:#b91c1c}.real{background:#15803d}.no_face{background:#6b7280}
.failed{background:#374151}
.bar{margin:10px 0 14px}
.bar label{margin-right:16px}
.mut{color:#6b7280;font-size:12px}
"""


def _options(values: Sequence[str], all_label: str) -> str:
    opts = [f'<option value="">{esc(all_label)}</option>']
    opts += [f'<option value="{esc(v)}">{esc(v)}</option>' for v in values]
    return "".join(opts)


def render_index(entries: Sequence[tuple[str, Mapping[str, Any]]], title: str = "") -> str:
    """The index page: one row per ``(relative file name, report meta)``.

    Sortable by clicking a column (score sorts numerically), filterable by label and
    status; a few lines of inline JavaScript, nothing loaded from anywhere.
    """
    rows = []
    labels: set[str] = set()
    statuses: set[str] = set()
    for href, m in entries:
        status = str(m.get("status") or "")
        label = str(m.get("label") or ("no face" if status == "no_face" else status))
        labels.add(label)
        statuses.add(status)
        score = num(m.get("score"))
        pill = {"fake": "fake", "real": "real", "no face": "no_face"}.get(label, "failed")
        frames = f"{m.get('frames_with_faces') or 0}/{m.get('frames_sampled') or 0}"
        rows.append(
            f'<tr data-name="{esc(m.get("name"))}" data-score="{"" if score is None else score}" '
            f'data-label="{esc(label)}" data-status="{esc(status)}" '
            f'data-created="{esc(m.get("created_at"))}">'
            f'<td><a href="{esc(href)}">{esc(m.get("name"))}</a>'
            f'<div class="mut">{esc(m.get("source"))}</div></td>'
            f'<td class="num">{fmt(score)}</td>'
            f'<td><span class="pill {pill}">{esc(label)}</span></td>'
            f"<td>{esc(status)}{' · ' + esc(m.get('error_code')) if m.get('error_code') else ''}"
            f"</td>"
            f'<td class="num">{esc(frames)}</td><td class="num">{esc(m.get("tracks", 0))}</td>'
            f"<td>{esc(m.get('compression') or '–')}</td><td>{esc(m.get('model') or '–')}</td>"
            f'<td class="mut">{esc(str(m.get("created_at") or "")[:16].replace("T", " "))}</td>'
            "</tr>"
        )
    head = (
        '<tr><th data-key="name">video</th><th data-key="score" data-num="1">score</th>'
        '<th data-key="label">label</th><th data-key="status">status</th>'
        "<th>faces/frames</th><th>tracks</th><th>compression</th><th>model</th>"
        '<th data-key="created">scored</th></tr>'
    )
    return "".join(
        [
            '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            "img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">",
            f"<title>cre reports{': ' + esc(title) if title else ''}</title>",
            f"<style>{_INDEX_CSS}</style></head><body><main>",
            f"<h1>cre reports{': ' + esc(title) if title else ''}</h1>",
            '<div class="bar"><label>label <select id="f-label">',
            _options(sorted(labels), "all"),
            '</select></label><label>status <select id="f-status">',
            _options(sorted(statuses), "all"),
            '</select></label><span class="mut" id="count"></span></div>',
            f'<table id="reports"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>',
            '<p class="mut">Click a column heading to sort. Each report is a self-contained '
            "file in this folder.</p>",
            f"<script>{_INDEX_JS}</script></main></body></html>\n",
        ]
    )


def write_index(folder: Path) -> Path:
    """Write ``folder/index.html`` listing every report page in ``folder``."""
    entries = []
    for path in sorted(folder.glob("*.html")):
        if path.name == INDEX_FILE:
            continue
        try:
            meta = read_report_meta(path.read_text(encoding="utf-8", errors="replace"))
        except OSError as e:
            logger.warning("%s: unreadable: %s", path, e)
            continue
        if meta is not None:
            entries.append((path.name, meta))
    out = folder / INDEX_FILE
    folder.mkdir(parents=True, exist_ok=True)
    out.write_text(render_index(entries, title=folder.resolve().name), encoding="utf-8")
    logger.info("wrote %s (%d reports)", out, len(entries))
    return out
