//! `ebfleet report`: a run's status as one static HTML page.
//!
//! The page stands alone: inline CSS, inline SVG, no JavaScript and nothing
//! fetched, so it opens from a local directory as well as from S3. The logs
//! of failed builds are linked relatively, as `logs/<log key>`, where the
//! CLI puts them beside the page.
//!
//! Module names, reasons and log keys come from records that build nodes
//! write: everything taken from a record is HTML-escaped, and a log key is
//! percent-encoded in its link (and not linked at all when it would climb
//! out of `logs/`).

use ebfleet_core::clock::UtcTime;
use ebfleet_core::status::{ModuleState, ModuleStatus, PlatformStatus, RunStatus};
use std::collections::HashMap;
use std::fmt::{self, Write};

/// At most this many modules are drawn in a platform's graph.
const MAX_NODES: usize = 300;

/// The graph's geometry, in pixels.
const PAD: u32 = 12;
const NODE_H: u32 = 16;
const ROW: u32 = 21;
const COL_GAP: u32 = 36;
/// A level with more modules than this is drawn in several columns.
const ROWS_PER_COLUMN: usize = 40;
/// Labels longer than this many characters are cut (the tooltip has all).
const LABEL_MAX: usize = 40;
/// Labels are 10px sans-serif.
const FONT_PX: u32 = 10;
const LABEL_PAD: u32 = 5;

/// Writes to a `String`, which cannot fail.
macro_rules! w {
    ($out:expr, $($arg:tt)*) => {
        let _ = write!($out, $($arg)*);
    };
}

/// Run `status` as one HTML5 document.
pub fn render(status: &RunStatus) -> String {
    let mut h = String::with_capacity(64 * 1024);
    w!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>ebfleet run {}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        Esc(&status.execution)
    );
    header(&mut h, status);
    platforms_table(&mut h, &status.platforms);
    for (i, p) in status.platforms.iter().enumerate() {
        platform_section(&mut h, i, p);
    }
    h.push_str("</body>\n</html>\n");
    h
}

const CSS: &str = "
body{font:14px/1.4 sans-serif;color:#1d2125;margin:16px 24px;background:#fff}
h1{font-size:20px;margin:0 0 8px}
h2{font-size:17px;margin:24px 0 8px;border-bottom:1px solid #d0d4d9;padding-bottom:2px}
h3{font-size:14px;margin:14px 0 6px}
dl.run{display:grid;grid-template-columns:max-content auto;gap:2px 14px;margin:0}
dl.run dt{font-weight:bold}
dl.run dd{margin:0}
pre{margin:0;white-space:pre-wrap;overflow-wrap:anywhere;font-size:12px}
.status{font-weight:bold}
.status-ok{color:#1e6b32}
.status-bad{color:#b3261e}
.status-running{color:#1b5fb4}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #d0d4d9;padding:2px 8px;text-align:left;vertical-align:top}
th{background:#f0f2f4}
td.n{text-align:right;font-variant-numeric:tabular-nums}
td.bad{color:#b3261e;font-weight:bold}
tfoot td{font-weight:bold}
td.reason{max-width:60em;overflow-wrap:anywhere;white-space:pre-wrap}
td.log{overflow-wrap:anywhere}
.none{color:#5f6368}
.rows{max-height:60vh;overflow:auto}
figure{margin:0}
.scroll{overflow:auto;border:1px solid #d0d4d9;max-height:90vh}
figcaption{font-size:12px;color:#5f6368;margin-top:4px}
ul.legend{list-style:none;padding:0;margin:0 0 6px;font-size:12px}
ul.legend li{display:inline-block;margin-right:14px}
ul.legend .sw{display:inline-block;width:10px;height:10px;border:1px solid;margin-right:4px;vertical-align:-1px}
svg.graph{display:block}
";

// ---------------------------------------------------------------------------
// Header and the platforms' table.

fn header(h: &mut String, s: &RunStatus) {
    let class = match s.status.as_str() {
        "SUCCEEDED" => "status-ok",
        "FAILED" | "TIMED_OUT" | "ABORTED" => "status-bad",
        "RUNNING" | "PENDING_REDRIVE" => "status-running",
        _ => "status-other",
    };
    w!(
        h,
        "<header>\n<h1>ebfleet run {}</h1>\n<dl class=\"run\">\n\
         <dt>Status</dt><dd class=\"status {class}\">{}</dd>\n\
         <dt>Started</dt><dd>{}</dd>\n",
        Esc(&s.execution),
        Esc(&s.status),
        utc(s.started)
    );
    match s.stopped {
        Some(t) => {
            w!(
                h,
                "<dt>Stopped</dt><dd>{} (after {})</dd>\n",
                utc(t),
                hms(t.saturating_sub(s.started))
            );
        }
        None => h.push_str("<dt>Stopped</dt><dd>not yet</dd>\n"),
    }
    if !s.execution_arn.is_empty() {
        w!(
            h,
            "<dt>Execution</dt><dd><code>{}</code></dd>\n",
            Esc(&s.execution_arn)
        );
    }
    if let Some(e) = &s.error {
        w!(h, "<dt>Error</dt><dd><code>{}</code></dd>\n", Esc(e));
    }
    if let Some(c) = &s.cause {
        w!(h, "<dt>Cause</dt><dd><pre>{}</pre></dd>\n", Esc(c));
    }
    h.push_str("</dl>\n</header>\n");
}

fn platforms_table(h: &mut String, platforms: &[PlatformStatus]) {
    h.push_str(
        "<section>\n<h2>Platforms</h2>\n<table id=\"platforms\">\n<thead><tr>\
         <th>Platform</th><th>Planned</th><th>Built</th><th>Failed</th><th>Skipped</th>\
         <th>Running</th><th>Pending</th><th>Not built</th><th>Build time</th><th>Node time</th>\
         </tr></thead>\n<tbody>\n",
    );
    for (i, p) in platforms.iter().enumerate() {
        w!(
            h,
            "<tr data-platform=\"{}\"><td><a href=\"#platform-{i}\">{}</a></td>",
            Esc(&p.platform),
            Esc(&p.platform)
        );
        counts_cells(h, p.planned, &p.counts, p.build_seconds, p.node_seconds);
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody>\n");
    if platforms.len() > 1 {
        let mut total = ebfleet_core::status::Counts::default();
        let (mut planned, mut seconds, mut node) = (0, 0, None);
        for p in platforms {
            total.add(&p.counts);
            planned += p.planned;
            seconds += p.build_seconds;
            if let Some(n) = p.node_seconds {
                node = Some(node.unwrap_or(0) + n);
            }
        }
        h.push_str("<tfoot><tr><td>All platforms</td>");
        counts_cells(h, planned, &total, seconds, node);
        h.push_str("</tr></tfoot>\n");
    }
    h.push_str("</table>\n</section>\n");
}

fn counts_cells(
    h: &mut String,
    planned: usize,
    c: &ebfleet_core::status::Counts,
    seconds: u64,
    node_seconds: Option<u64>,
) {
    let failed_class = if c.failed > 0 { "n bad" } else { "n" };
    w!(
        h,
        "<td class=\"n\">{planned}</td><td class=\"n\">{}</td>\
         <td class=\"{failed_class}\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
         <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
         <td class=\"n\">{}</td>",
        c.built,
        c.failed,
        c.skipped,
        c.running,
        c.pending,
        c.not_built,
        hms(seconds),
        node_seconds.map_or_else(|| "—".to_string(), hms)
    );
}

// ---------------------------------------------------------------------------
// A platform: its failures and its graph.

fn platform_section(h: &mut String, i: usize, p: &PlatformStatus) {
    w!(
        h,
        "<section class=\"platform\" id=\"platform-{i}\">\n<h2>{}</h2>\n\
         <h3>Failed and skipped modules</h3>\n",
        Esc(&p.platform)
    );
    failures_table(h, p);
    h.push_str("<h3>Dependency graph</h3>\n");
    if p.modules.is_empty() {
        h.push_str("<p class=\"none\">Nothing to build.</p>\n");
    } else {
        graph_figure(h, p);
    }
    h.push_str("</section>\n");
}

fn failures_table(h: &mut String, p: &PlatformStatus) {
    let rows: Vec<&ModuleStatus> = [ModuleState::Failed, ModuleState::Skipped]
        .into_iter()
        .flat_map(|s| p.modules.iter().filter(move |m| m.state == s))
        .collect();
    if rows.is_empty() {
        h.push_str("<p class=\"none\">None.</p>\n");
        return;
    }
    w!(
        h,
        "<div class=\"rows\">\n<table class=\"failures\" data-platform=\"{}\">\n<thead><tr><th>Module</th>\
         <th>State</th><th>Error class</th><th>Reason</th><th>Log</th></tr></thead>\n<tbody>\n",
        Esc(&p.platform)
    );
    for m in rows {
        w!(
            h,
            "<tr data-module=\"{}\" data-state=\"{}\"><td>{}</td><td>{}</td><td>{}</td>\
             <td class=\"reason\">{}</td><td class=\"log\">",
            Esc(&m.module),
            m.state.as_str(),
            Esc(&m.module),
            state_label(m.state),
            m.error_class.map_or("", |c| c.as_str()),
            Esc(m.reason.as_deref().unwrap_or(""))
        );
        match m.log_key.as_deref() {
            Some(key) => match log_href(key) {
                Some(href) => {
                    let file = key.rsplit('/').find(|s| !s.is_empty()).unwrap_or(key);
                    w!(
                        h,
                        "<a href=\"{href}\" title=\"{}\">{}</a>",
                        Esc(key),
                        Esc(file)
                    );
                }
                // A key that would lead out of `logs/`: shown, not linked.
                None => {
                    w!(h, "<code>{}</code>", Esc(key));
                }
            },
            None => h.push_str("&mdash;"),
        }
        h.push_str("</td></tr>\n");
    }
    h.push_str("</tbody>\n</table>\n</div>\n");
}

/// `logs/<key>`, percent-encoded, or `None` for a key that is not a plain
/// relative path (empty, absolute, or with a `.` or `..` segment).
fn log_href(key: &str) -> Option<String> {
    if key.is_empty() || key.starts_with('/') || key.split('/').any(|s| s == "." || s == "..") {
        return None;
    }
    let mut href = String::with_capacity(key.len() + 8);
    href.push_str("logs/");
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            href.push(b as char);
        } else {
            w!(href, "%{b:02X}");
        }
    }
    Some(href)
}

// ---------------------------------------------------------------------------
// The graph.

/// A module as drawn.
struct Node<'a> {
    module: &'a ModuleStatus,
    x: u32,
    y: u32,
    w: u32,
}

/// A platform's graph, laid out: the modules drawn (dependencies first) and
/// the edges between them, as (dependency, dependent) indices into `nodes`.
struct Graph<'a> {
    nodes: Vec<Node<'a>>,
    edges: Vec<(usize, usize)>,
    width: u32,
    height: u32,
    /// Modules not drawn.
    left_out: usize,
}

/// The modules to draw, as indices into `modules`, in their order: all of
/// them up to `cap`; past it the failed, running and skipped ones first,
/// then their direct dependencies, then the others in order, up to `cap`.
fn select(modules: &[ModuleStatus], index: &HashMap<&str, usize>, cap: usize) -> Vec<usize> {
    if modules.len() <= cap {
        return (0..modules.len()).collect();
    }
    let mut keep = vec![false; modules.len()];
    let mut kept = 0;
    let mut take = |i: usize, keep: &mut Vec<bool>| {
        if !keep[i] && kept < cap {
            keep[i] = true;
            kept += 1;
        }
    };
    let mut first = Vec::new();
    for s in [
        ModuleState::Failed,
        ModuleState::Running,
        ModuleState::Skipped,
    ] {
        for (i, m) in modules.iter().enumerate() {
            if m.state == s {
                take(i, &mut keep);
                first.push(i);
            }
        }
    }
    for &i in &first {
        for d in &modules[i].deps {
            if let Some(&j) = index.get(d.as_str()) {
                take(j, &mut keep);
            }
        }
    }
    for i in 0..modules.len() {
        take(i, &mut keep);
    }
    (0..modules.len()).filter(|&i| keep[i]).collect()
}

/// Levels: a module's is one more than the highest of its dependencies'
/// (0 without any); `deps` by index, any order, cycles cut.
fn levels(deps: &[Vec<usize>]) -> Vec<usize> {
    let n = deps.len();
    let mut level = vec![0; n];
    // Dependencies first takes one pass; a second finds nothing to change.
    for _ in 0..=n {
        let mut changed = false;
        for i in 0..n {
            let l = deps[i]
                .iter()
                .map(|&d| level[d] + 1)
                .max()
                .unwrap_or(0)
                .min(n);
            if l != level[i] {
                level[i] = l;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    level
}

fn layout(p: &PlatformStatus) -> Graph<'_> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, m) in p.modules.iter().enumerate() {
        index.entry(m.module.as_str()).or_insert(i);
    }
    let drawn = select(&p.modules, &index, MAX_NODES);
    let mut at = vec![usize::MAX; p.modules.len()];
    for (k, &i) in drawn.iter().enumerate() {
        at[i] = k;
    }
    // Each drawn module's drawn dependencies, once each.
    let deps: Vec<Vec<usize>> = drawn
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let mut ds: Vec<usize> = p.modules[i]
                .deps
                .iter()
                .filter_map(|d| index.get(d.as_str()))
                .map(|&j| at[j])
                .filter(|&d| d != usize::MAX && d != k)
                .collect();
            ds.sort_unstable();
            ds.dedup();
            ds
        })
        .collect();
    let level = levels(&deps);
    let top = level.iter().copied().max().unwrap_or(0);
    let mut by_level: Vec<Vec<usize>> = vec![Vec::new(); top + 1];
    for (k, &l) in level.iter().enumerate() {
        by_level[l].push(k);
    }
    // Columns, left to right: each level, cut into columns of at most
    // ROWS_PER_COLUMN.
    let columns: Vec<&[usize]> = by_level
        .iter()
        .flat_map(|ks| ks.chunks(ROWS_PER_COLUMN))
        .collect();
    let rows = columns.iter().map(|c| c.len()).max().unwrap_or(0) as u32;
    let mut nodes: Vec<Node> = drawn
        .iter()
        .map(|&i| Node {
            module: &p.modules[i],
            x: 0,
            y: 0,
            w: 0,
        })
        .collect();
    let mut x = PAD;
    for col in &columns {
        let text = col
            .iter()
            .map(|&k| text_width(&label(&nodes[k].module.module)))
            .max()
            .unwrap_or(0);
        let w = text + 2 * LABEL_PAD;
        // Shorter columns centred on the tallest.
        let y0 = PAD + (rows - col.len() as u32) * ROW / 2;
        for (r, &k) in col.iter().enumerate() {
            nodes[k].x = x;
            nodes[k].y = y0 + r as u32 * ROW;
            nodes[k].w = w;
        }
        x += w + COL_GAP;
    }
    let width = x - COL_GAP + PAD;
    let height = 2 * PAD + rows * ROW - (ROW - NODE_H);
    let edges = deps
        .iter()
        .enumerate()
        .flat_map(|(k, ds)| ds.iter().map(move |&d| (d, k)))
        .collect();
    Graph {
        nodes,
        edges,
        width,
        height,
        left_out: p.modules.len() - drawn.len(),
    }
}

/// The fill, outline and text colours of a module in `state`.
fn colours(state: ModuleState) -> (&'static str, &'static str, &'static str) {
    match state {
        ModuleState::Built => ("#2e8540", "#1e5c2c", "#ffffff"),
        ModuleState::Failed => ("#d62d20", "#8f1d15", "#ffffff"),
        ModuleState::Skipped => ("#f5a623", "#b87503", "#1d2125"),
        ModuleState::Running => ("#1f6fd1", "#134a8c", "#ffffff"),
        ModuleState::Pending => ("#d5d8dc", "#9aa0a6", "#1d2125"),
        ModuleState::NotBuilt => ("#eceef0", "#b0b5ba", "#4d5156"),
    }
}

const STATES: [ModuleState; 6] = [
    ModuleState::Built,
    ModuleState::Failed,
    ModuleState::Skipped,
    ModuleState::Running,
    ModuleState::Pending,
    ModuleState::NotBuilt,
];

fn state_label(s: ModuleState) -> &'static str {
    match s {
        ModuleState::NotBuilt => "not built",
        s => s.as_str(),
    }
}

/// A module's label: its name, cut to LABEL_MAX characters.
fn label(module: &str) -> std::borrow::Cow<'_, str> {
    if module.chars().count() <= LABEL_MAX {
        module.into()
    } else {
        let mut s: String = module.chars().take(LABEL_MAX - 1).collect();
        s.push('\u{2026}');
        s.into()
    }
}

/// About how wide `s` is in pixels, set in FONT_PX sans-serif: from the
/// advance widths of DejaVu Sans (Debian's default, and wider than most),
/// rounded up.
fn text_width(s: &str) -> u32 {
    let thousandths: u32 = s
        .chars()
        .map(|c| match c {
            '.' | ',' | ':' | ';' | '\'' | '|' => 320,
            'i' | 'j' | 'l' | 'I' => 300,
            '-' | '/' | '(' | ')' | '[' | ']' | 'f' => 390,
            't' | 'r' => 420,
            ' ' => 320,
            'm' | 'w' | 'M' | 'W' => 1000,
            '0'..='9' | '_' | 'a'..='z' => 640,
            'A'..='Z' => 780,
            c if c.is_ascii() => 840,
            _ => 1000,
        })
        .sum();
    (thousandths * FONT_PX).div_ceil(1000)
}

fn graph_figure(h: &mut String, p: &PlatformStatus) {
    let g = layout(p);
    h.push_str("<figure>\n<ul class=\"legend\">");
    for s in STATES {
        let (fill, stroke, _) = colours(s);
        w!(
            h,
            "<li><span class=\"sw\" style=\"background:{fill};border-color:{stroke}\"></span>{}</li>",
            state_label(s)
        );
    }
    h.push_str("</ul>\n<div class=\"scroll\">\n");
    w!(
        h,
        "<svg class=\"graph\" data-platform=\"{}\" xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{w}\" height=\"{ht}\" viewBox=\"0 0 {w} {ht}\" font-family=\"sans-serif\" \
         font-size=\"{FONT_PX}\" role=\"img\" aria-label=\"Dependency graph of {}\">\n\
         <g class=\"edges\" fill=\"none\" stroke=\"#8a9099\" stroke-opacity=\"0.55\" stroke-width=\"1\">\n",
        Esc(&p.platform),
        Esc(&p.platform),
        w = g.width,
        ht = g.height
    );
    let mid = NODE_H / 2;
    for &(d, k) in &g.edges {
        let (a, b) = (&g.nodes[d], &g.nodes[k]);
        let (x1, y1, x2, y2) = (a.x + a.w, a.y + mid, b.x, b.y + mid);
        let mx = (x1 + x2) / 2;
        w!(
            h,
            "<path class=\"edge\" data-from=\"{}\" data-to=\"{}\" d=\"M{x1} {y1}C{mx} {y1} {mx} {y2} {x2} {y2}\"/>\n",
            Esc(&a.module.module),
            Esc(&b.module.module)
        );
    }
    h.push_str("</g>\n");
    for n in &g.nodes {
        let m = n.module;
        let (fill, stroke, text) = colours(m.state);
        let dash = if m.state == ModuleState::NotBuilt {
            " stroke-dasharray=\"3 2\""
        } else {
            ""
        };
        w!(
            h,
            "<g class=\"node\" data-module=\"{}\" data-state=\"{}\"><title>{} ({})</title>\
             <rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{NODE_H}\" rx=\"3\" fill=\"{fill}\" \
             stroke=\"{stroke}\"{dash}/><text x=\"{}\" y=\"{}\" dominant-baseline=\"central\" \
             fill=\"{text}\">{}</text></g>\n",
            Esc(&m.module),
            m.state.as_str(),
            Esc(&m.module),
            state_label(m.state),
            n.x,
            n.y,
            n.w,
            n.x + LABEL_PAD,
            n.y + mid,
            Esc(&label(&m.module))
        );
    }
    h.push_str("</svg>\n</div>\n");
    let total = p.modules.len();
    if g.left_out > 0 {
        w!(
            h,
            "<figcaption data-left-out=\"{}\">{} of {total} modules drawn: the failed, running \
             and skipped ones and their direct dependencies first, then the others in build \
             order; {} left out (the tables above count them all).</figcaption>\n",
            g.left_out,
            g.nodes.len(),
            g.left_out
        );
    } else {
        w!(
            h,
            "<figcaption data-left-out=\"0\">{total} modules and {} dependencies between them; \
             dependencies to the left.</figcaption>\n",
            g.edges.len()
        );
    }
    h.push_str("</figure>\n");
}

// ---------------------------------------------------------------------------
// Text.

/// HTML-escaped, for text and double-quoted attribute values alike.
struct Esc<'a>(&'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

/// `2026-12-05 03:04:05 UTC`.
fn utc(unix: u64) -> String {
    let t = UtcTime::from_unix(unix);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// `h:mm:ss`.
pub fn hms(seconds: u64) -> String {
    format!(
        "{}:{:02}:{:02}",
        seconds / 3_600,
        seconds / 60 % 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebfleet_core::record::ErrorClass;
    use ebfleet_core::status::Counts;
    use std::collections::BTreeSet;

    fn module(name: &str, state: ModuleState, deps: &[&str]) -> ModuleStatus {
        ModuleStatus {
            module: name.into(),
            state,
            error_class: None,
            reason: None,
            log_key: None,
            duration_s: None,
            instance_type: None,
            deps: deps.iter().map(|d| d.to_string()).collect(),
        }
    }

    fn failed(name: &str, class: ErrorClass, reason: &str, log_key: Option<&str>) -> ModuleStatus {
        ModuleStatus {
            error_class: Some(class),
            reason: Some(reason.into()),
            log_key: log_key.map(Into::into),
            ..module(name, ModuleState::Failed, &[])
        }
    }

    fn platform(name: &str, modules: Vec<ModuleStatus>) -> PlatformStatus {
        let mut counts = Counts::default();
        for m in &modules {
            *match m.state {
                ModuleState::Built => &mut counts.built,
                ModuleState::Failed => &mut counts.failed,
                ModuleState::Skipped => &mut counts.skipped,
                ModuleState::Running => &mut counts.running,
                ModuleState::Pending => &mut counts.pending,
                ModuleState::NotBuilt => &mut counts.not_built,
            } += 1;
        }
        PlatformStatus {
            platform: name.into(),
            planned: modules.len(),
            counts,
            build_seconds: 0,
            node_seconds: None,
            instance_hours: None,
            usd: None,
            modules,
        }
    }

    fn run(platforms: Vec<PlatformStatus>) -> RunStatus {
        RunStatus {
            execution: "ebfleet-20261205T030405Z-full".into(),
            execution_arn: "arn:aws:states:us-east-1:111122223333:execution:ebfleet:ebfleet-20261205T030405Z-full".into(),
            status: "FAILED".into(),
            started: 1_796_439_845,
            stopped: Some(1_796_439_845 + 4 * 3_600 + 125),
            error: None,
            cause: None,
            summary_key: None,
            instance_hours: None,
            usd: None,
            platforms,
        }
    }

    /// What stands between the first `open` in `html` and the next `close`.
    fn between<'a>(html: &'a str, open: &str, close: &str) -> &'a str {
        let start = html.find(open).unwrap_or_else(|| panic!("no {open:?}")) + open.len();
        let len = html[start..]
            .find(close)
            .unwrap_or_else(|| panic!("no {close:?}"));
        &html[start..start + len]
    }

    /// The texts of a table row's cells, tags stripped.
    fn cells(row: &str) -> Vec<String> {
        row.split("<td")
            .skip(1)
            .map(|c| {
                let c = &c[c.find('>').unwrap() + 1..c.find("</td>").unwrap()];
                let mut text = String::new();
                let mut in_tag = false;
                for ch in c.chars() {
                    match ch {
                        '<' => in_tag = true,
                        '>' => in_tag = false,
                        _ if !in_tag => text.push(ch),
                        _ => {}
                    }
                }
                text
            })
            .collect()
    }

    /// The `x`, `y` and `width` of `module`'s box.
    fn rect(html: &str, module: &str) -> (u32, u32, u32) {
        let node = between(
            html,
            &format!("<g class=\"node\" data-module=\"{module}\""),
            "</g>",
        );
        let n = |a: &str| between(node, &format!(" {a}=\""), "\"").parse().unwrap();
        (n("x"), n("y"), n("width"))
    }

    /// The (from, to) of each edge drawn.
    fn edges(html: &str) -> Vec<(String, String)> {
        html.split("<path class=\"edge\"")
            .skip(1)
            .map(|e| {
                (
                    between(e, "data-from=\"", "\"").to_string(),
                    between(e, "data-to=\"", "\"").to_string(),
                )
            })
            .collect()
    }

    /// The five-module graph: a; b <- a; c <- a, b; d <- c, a (twice); e.
    fn small() -> PlatformStatus {
        platform(
            "amzn-2023_graviton-3",
            vec![
                module("a/1", ModuleState::Built, &[]),
                module("b/1", ModuleState::Built, &["a/1"]),
                module("c/1", ModuleState::Failed, &["a/1", "b/1"]),
                module("d/1", ModuleState::Skipped, &["c/1", "a/1", "a/1"]),
                module("e/1", ModuleState::Pending, &[]),
            ],
        )
    }

    /// Every tag of `html` is one the renderer writes, with attributes it
    /// writes, each with a double-quoted value; every `&` starts an entity.
    fn assert_well_formed(html: &str) {
        const TAGS: &[&str] = &[
            "html",
            "head",
            "meta",
            "title",
            "style",
            "body",
            "header",
            "h1",
            "h2",
            "h3",
            "dl",
            "dt",
            "dd",
            "code",
            "pre",
            "section",
            "table",
            "thead",
            "tbody",
            "tfoot",
            "tr",
            "th",
            "td",
            "a",
            "p",
            "figure",
            "figcaption",
            "ul",
            "li",
            "span",
            "div",
            "svg",
            "g",
            "path",
            "rect",
            "text",
        ];
        const ATTRS: &[&str] = &[
            "lang",
            "charset",
            "name",
            "content",
            "id",
            "class",
            "href",
            "title",
            "style",
            "data-platform",
            "data-module",
            "data-state",
            "data-from",
            "data-to",
            "data-left-out",
            "xmlns",
            "width",
            "height",
            "viewBox",
            "font-family",
            "font-size",
            "role",
            "aria-label",
            "fill",
            "stroke",
            "stroke-opacity",
            "stroke-width",
            "d",
            "x",
            "y",
            "rx",
            "stroke-dasharray",
            "dominant-baseline",
        ];
        for tag in html.split('<').skip(1) {
            let tag = &tag[..tag.find('>').expect("a tag ends")];
            if tag == "!DOCTYPE html" {
                continue;
            }
            let tag = tag.strip_prefix('/').unwrap_or(tag);
            let name_end = tag.find([' ', '/']).unwrap_or(tag.len());
            assert!(TAGS.contains(&&tag[..name_end]), "unexpected tag <{tag}>");
            let mut rest = tag[name_end..].trim_end_matches('/');
            while !rest.is_empty() {
                rest = rest
                    .strip_prefix(' ')
                    .unwrap_or_else(|| panic!("in <{tag}>"));
                let eq = rest.find("=\"").unwrap_or_else(|| panic!("in <{tag}>"));
                assert!(
                    ATTRS.contains(&&rest[..eq]),
                    "unexpected attribute in <{tag}>"
                );
                let value_end = eq + 2 + rest[eq + 2..].find('"').expect("a closing quote");
                rest = &rest[value_end + 1..];
            }
        }
        for (i, _) in html.match_indices('&') {
            let entity = ["amp;", "lt;", "gt;", "quot;", "#39;", "mdash;"];
            assert!(
                entity.iter().any(|e| html[i + 1..].starts_with(e)),
                "a bare & at {}",
                &html[i..(i + 20).min(html.len())]
            );
        }
    }

    #[test]
    fn hostile_strings_come_out_inert() {
        let mut evil = failed(
            "evil\" onmouseover=\"alert(2)/<script>alert(3)</script>",
            ErrorClass::CompileError,
            "</td><script>alert(4)</script> & \"quoted\" 'single'",
            Some("p/logs/x\"><script>alert(5)</script>/a b&c?d#e%41.log"),
        );
        evil.deps = vec!["base/1".into()];
        let climbing = failed(
            "climb/1",
            ErrorClass::Unknown,
            "no",
            Some("p/logs/../../../etc/passwd"),
        );
        let mut s = run(vec![platform(
            "p\"<b>",
            vec![module("base/1", ModuleState::Built, &[]), evil, climbing],
        )]);
        s.execution = "<script>alert(1)</script>".into();
        s.error = Some("<img src=x onerror=alert(6)>".into());
        s.cause = Some("{\"errorMessage\": \"a & b\"}".into());
        let html = render(&s);
        assert_well_formed(&html);
        let lower = html.to_lowercase();
        assert!(!lower.contains("<script"), "{html}");
        assert!(!lower.contains("<img"));
        assert!(!html.contains("\" onmouseover=\""));
        assert!(html.contains("<h1>ebfleet run &lt;script&gt;alert(1)&lt;/script&gt;</h1>"));
        assert!(html.contains(
            "data-module=\"evil&quot; onmouseover=&quot;alert(2)/&lt;script&gt;alert(3)&lt;/script&gt;\""
        ));
        assert!(html.contains("data-platform=\"p&quot;&lt;b&gt;\""));
        assert!(html.contains(
            "&lt;/td&gt;&lt;script&gt;alert(4)&lt;/script&gt; &amp; &quot;quoted&quot; &#39;single&#39;"
        ));
        assert!(html.contains("{&quot;errorMessage&quot;: &quot;a &amp; b&quot;}"));
        // The log's link: percent-encoded, relative, under logs/.
        assert!(html.contains(
            "href=\"logs/p/logs/x%22%3E%3Cscript%3Ealert%285%29%3C/script%3E/a%20b%26c%3Fd%23e%2541.log\""
        ));
        // A key that climbs out of logs/ is shown, not linked.
        assert!(!html.contains("href=\"logs/p/logs/.."));
        assert!(html.contains("<code>p/logs/../../../etc/passwd</code>"));
    }

    #[test]
    fn the_platforms_table_has_a_row_per_platform_with_its_counts() {
        let mut a = small();
        a.build_seconds = 3_725;
        a.node_seconds = Some(7_200);
        let mut b = platform(
            "amzn-2023_epyc-gen-3",
            vec![
                module("x/1", ModuleState::Running, &[]),
                module("y/1", ModuleState::NotBuilt, &["x/1"]),
                module("z/1", ModuleState::NotBuilt, &["x/1"]),
            ],
        );
        b.build_seconds = 59;
        let html = render(&run(vec![a, b]));
        assert_well_formed(&html);
        let table = between(&html, "<table id=\"platforms\">", "</table>");
        assert_eq!(table.matches("<tr data-platform=").count(), 2);
        let row = |p: &str| {
            cells(between(
                table,
                &format!("<tr data-platform=\"{p}\">"),
                "</tr>",
            ))
        };
        assert_eq!(
            row("amzn-2023_graviton-3"),
            [
                "amzn-2023_graviton-3",
                "5",
                "2",
                "1",
                "1",
                "0",
                "1",
                "0",
                "1:02:05",
                "2:00:00"
            ]
        );
        assert_eq!(
            row("amzn-2023_epyc-gen-3"),
            [
                "amzn-2023_epyc-gen-3",
                "3",
                "0",
                "0",
                "0",
                "1",
                "0",
                "2",
                "0:00:59",
                "—"
            ]
        );
        assert_eq!(
            cells(between(table, "<tfoot>", "</tfoot>")),
            [
                "All platforms",
                "8",
                "2",
                "1",
                "1",
                "1",
                "1",
                "2",
                "1:03:04",
                "2:00:00"
            ]
        );
        // The header: the run, its status and times in UTC.
        assert!(html.contains("<h1>ebfleet run ebfleet-20261205T030405Z-full</h1>"));
        assert!(html.contains(">FAILED</dd>"));
        assert!(html.contains("<dd>2026-12-05 03:04:05 UTC</dd>"));
        assert!(html.contains("<dd>2026-12-05 07:06:10 UTC (after 4:02:05)</dd>"));
    }

    #[test]
    fn failures_and_skips_are_listed_with_their_logs() {
        let mut p = small();
        p.modules[2] = ModuleStatus {
            deps: vec!["a/1".into(), "b/1".into()],
            ..failed(
                "c/1",
                ErrorClass::TestFailure,
                "2 tests failed",
                Some("amzn-2023_graviton-3/logs/c/1/easybuild-c-1.log"),
            )
        };
        p.modules[3].error_class = Some(ErrorClass::DependencyFailed);
        p.modules[3].reason = Some("needs c/1, which failed".into());
        let html = render(&run(vec![p]));
        let table = between(
            &html,
            "<table class=\"failures\" data-platform=\"amzn-2023_graviton-3\">",
            "</table>",
        );
        let rows: Vec<Vec<String>> = table.split("<tr data-module").skip(1).map(cells).collect();
        assert_eq!(
            rows,
            [
                [
                    "c/1",
                    "failed",
                    "test_failure",
                    "2 tests failed",
                    "easybuild-c-1.log"
                ],
                [
                    "d/1",
                    "skipped",
                    "dependency_failed",
                    "needs c/1, which failed",
                    "&mdash;"
                ],
            ]
        );
        assert!(table.contains(
            "<a href=\"logs/amzn-2023_graviton-3/logs/c/1/easybuild-c-1.log\" \
             title=\"amzn-2023_graviton-3/logs/c/1/easybuild-c-1.log\">"
        ));
    }

    #[test]
    fn the_graph_has_a_node_per_module_and_an_edge_per_dependency() {
        let html = render(&run(vec![small()]));
        assert_well_formed(&html);
        let svg = between(
            &html,
            "<svg class=\"graph\" data-platform=\"amzn-2023_graviton-3\"",
            "</svg>",
        );
        let nodes: Vec<(&str, &str)> = svg
            .split("<g class=\"node\"")
            .skip(1)
            .map(|n| {
                (
                    between(n, "data-module=\"", "\""),
                    between(n, "data-state=\"", "\""),
                )
            })
            .collect();
        assert_eq!(
            nodes,
            [
                ("a/1", "built"),
                ("b/1", "built"),
                ("c/1", "failed"),
                ("d/1", "skipped"),
                ("e/1", "pending")
            ]
        );
        let got: BTreeSet<(String, String)> = edges(svg).into_iter().collect();
        let want: BTreeSet<(String, String)> = [
            ("a/1", "b/1"),
            ("a/1", "c/1"),
            ("b/1", "c/1"),
            ("a/1", "d/1"),
            ("c/1", "d/1"),
        ]
        .iter()
        .map(|&(a, b)| (a.into(), b.into()))
        .collect();
        assert_eq!(
            edges(svg).len(),
            5,
            "one edge per dependency, however often listed"
        );
        assert_eq!(got, want);
        // Failed red, built green.
        assert!(between(svg, "data-module=\"c/1\"", "</g>").contains("fill=\"#d62d20\""));
        assert!(between(svg, "data-module=\"a/1\"", "</g>").contains("fill=\"#2e8540\""));
        // The canvas holds every box.
        let width: u32 = between(svg, "width=\"", "\"").parse().unwrap();
        let height: u32 = between(svg, "height=\"", "\"").parse().unwrap();
        assert!(svg.contains(&format!("viewBox=\"0 0 {width} {height}\"")));
        for (m, _) in &nodes {
            let (x, y, w) = rect(svg, m);
            assert!(x + w < width && y + NODE_H < height, "{m} off the canvas");
        }
        assert!(html.contains("5 modules and 5 dependencies between them"));
    }

    #[test]
    fn a_dependent_is_drawn_right_of_its_dependencies() {
        let html = render(&run(vec![small()]));
        for (from, to) in edges(&html) {
            let (fx, _, fw) = rect(&html, &from);
            let (tx, _, _) = rect(&html, &to);
            assert!(
                fx + fw < tx,
                "{to} at {tx} is not right of {from} ending at {}",
                fx + fw
            );
        }
        // One level, one column: a and e, without dependencies, stacked.
        let (ax, ay, _) = rect(&html, "a/1");
        let (ex, ey, _) = rect(&html, "e/1");
        assert_eq!(ax, ex);
        assert!(ay.abs_diff(ey) >= NODE_H);
        // d is on level 3 (a, b, c below it), not on c's.
        let xs: BTreeSet<u32> = ["a/1", "b/1", "c/1", "d/1"]
            .iter()
            .map(|m| rect(&html, m).0)
            .collect();
        assert_eq!(xs.len(), 4);
    }

    #[test]
    fn levels_follow_dependencies_in_any_order_and_cut_cycles() {
        assert_eq!(levels(&[vec![], vec![0], vec![0, 1], vec![]]), [0, 1, 2, 0]);
        assert_eq!(levels(&[vec![1], vec![2], vec![]]), [2, 1, 0]);
        let cycle = levels(&[vec![1], vec![0]]);
        assert!(cycle.iter().all(|&l| l <= 2));
    }

    #[test]
    fn past_the_cap_the_failures_are_drawn_and_the_rest_counted() {
        // A chain of 1,000 modules in runs of 10; the failure is late.
        let name = |i: usize| format!("m{i}/1");
        let modules: Vec<ModuleStatus> = (0..1_000)
            .map(|i| {
                let state = match i {
                    905 => ModuleState::Failed,
                    955 => ModuleState::Skipped,
                    995 => ModuleState::Running,
                    i if i < 800 => ModuleState::Built,
                    _ => ModuleState::NotBuilt,
                };
                let deps = if i % 10 == 0 {
                    vec![]
                } else {
                    vec![name(i - 1)]
                };
                ModuleStatus {
                    deps,
                    ..module(&name(i), state, &[])
                }
            })
            .collect();
        let html = render(&run(vec![platform("amzn-2023_graviton-3", modules)]));
        assert_well_formed(&html);
        assert_eq!(html.matches("<g class=\"node\"").count(), MAX_NODES);
        for (m, state) in [
            ("m905/1", "failed"),
            ("m955/1", "skipped"),
            ("m995/1", "running"),
        ] {
            assert!(html.contains(&format!(
                "<g class=\"node\" data-module=\"{m}\" data-state=\"{state}\">"
            )));
        }
        // Their direct dependencies, then the first in build order.
        for m in ["m904/1", "m954/1", "m994/1", "m0/1", "m293/1"] {
            assert!(
                html.contains(&format!("<g class=\"node\" data-module=\"{m}\"")),
                "{m}"
            );
        }
        assert!(!html.contains("data-module=\"m294/1\""));
        assert!(!html.contains("data-module=\"m903/1\""));
        assert!(html.contains("<figcaption data-left-out=\"700\">300 of 1000 modules drawn"));
        assert!(html.contains("700 left out"));
        // Edges only between modules drawn.
        for (from, to) in edges(&html) {
            assert!(html.contains(&format!("<g class=\"node\" data-module=\"{from}\"")));
            assert!(html.contains(&format!("<g class=\"node\" data-module=\"{to}\"")));
        }

        // More failures than the cap: failures only, still capped.
        let many: Vec<ModuleStatus> = (0..400)
            .map(|i| module(&name(i), ModuleState::Built, &[]))
            .chain((400..800).map(|i| module(&name(i), ModuleState::Failed, &[])))
            .collect();
        let html = render(&run(vec![platform("amzn-2023_graviton-3", many)]));
        assert_eq!(html.matches("<g class=\"node\"").count(), MAX_NODES);
        assert_eq!(
            html.matches("data-state=\"failed\"><title>").count(),
            MAX_NODES
        );
        assert!(html.contains("<figcaption data-left-out=\"500\">"));
    }

    /// A run like a real one: two platforms of a foss/2023a stack, one with
    /// a failed OpenBLAS and what it blocked, and a big third one.
    fn sample() -> RunStatus {
        const STACK: &[(&str, &[&str])] = &[
            ("GCCcore/12.3.0", &[]),
            ("zlib/1.2.13-GCCcore-12.3.0", &["GCCcore/12.3.0"]),
            (
                "binutils/2.40-GCCcore-12.3.0",
                &["GCCcore/12.3.0", "zlib/1.2.13-GCCcore-12.3.0"],
            ),
            (
                "GCC/12.3.0",
                &["GCCcore/12.3.0", "binutils/2.40-GCCcore-12.3.0"],
            ),
            ("numactl/2.0.16-GCCcore-12.3.0", &["GCCcore/12.3.0"]),
            ("XZ/5.4.2-GCCcore-12.3.0", &["GCCcore/12.3.0"]),
            (
                "libxml2/2.11.4-GCCcore-12.3.0",
                &["zlib/1.2.13-GCCcore-12.3.0", "XZ/5.4.2-GCCcore-12.3.0"],
            ),
            (
                "hwloc/2.9.1-GCCcore-12.3.0",
                &[
                    "numactl/2.0.16-GCCcore-12.3.0",
                    "libxml2/2.11.4-GCCcore-12.3.0",
                ],
            ),
            (
                "UCX/1.14.1-GCCcore-12.3.0",
                &[
                    "zlib/1.2.13-GCCcore-12.3.0",
                    "numactl/2.0.16-GCCcore-12.3.0",
                ],
            ),
            ("libevent/2.1.12-GCCcore-12.3.0", &["GCCcore/12.3.0"]),
            (
                "PMIx/4.2.4-GCCcore-12.3.0",
                &[
                    "libevent/2.1.12-GCCcore-12.3.0",
                    "hwloc/2.9.1-GCCcore-12.3.0",
                ],
            ),
            (
                "OpenMPI/4.1.5-GCC-12.3.0",
                &[
                    "GCC/12.3.0",
                    "hwloc/2.9.1-GCCcore-12.3.0",
                    "UCX/1.14.1-GCCcore-12.3.0",
                    "PMIx/4.2.4-GCCcore-12.3.0",
                ],
            ),
            ("OpenBLAS/0.3.23-GCC-12.3.0", &["GCC/12.3.0"]),
            (
                "FlexiBLAS/3.3.1-GCC-12.3.0",
                &["GCC/12.3.0", "OpenBLAS/0.3.23-GCC-12.3.0"],
            ),
            ("FFTW/3.3.10-GCC-12.3.0", &["GCC/12.3.0"]),
            (
                "FFTW.MPI/3.3.10-gompi-2023a",
                &["FFTW/3.3.10-GCC-12.3.0", "OpenMPI/4.1.5-GCC-12.3.0"],
            ),
            (
                "ScaLAPACK/2.2.0-gompi-2023a-fb",
                &["OpenMPI/4.1.5-GCC-12.3.0", "FlexiBLAS/3.3.1-GCC-12.3.0"],
            ),
            (
                "foss/2023a",
                &[
                    "GCC/12.3.0",
                    "OpenMPI/4.1.5-GCC-12.3.0",
                    "FlexiBLAS/3.3.1-GCC-12.3.0",
                    "FFTW.MPI/3.3.10-gompi-2023a",
                    "ScaLAPACK/2.2.0-gompi-2023a-fb",
                ],
            ),
            ("bzip2/1.0.8-GCCcore-12.3.0", &["GCCcore/12.3.0"]),
            ("ncurses/6.4-GCCcore-12.3.0", &["GCCcore/12.3.0"]),
            (
                "libreadline/8.2-GCCcore-12.3.0",
                &["ncurses/6.4-GCCcore-12.3.0"],
            ),
            ("Tcl/8.6.13-GCCcore-12.3.0", &["zlib/1.2.13-GCCcore-12.3.0"]),
            (
                "SQLite/3.42.0-GCCcore-12.3.0",
                &[
                    "libreadline/8.2-GCCcore-12.3.0",
                    "Tcl/8.6.13-GCCcore-12.3.0",
                ],
            ),
            ("libffi/3.4.4-GCCcore-12.3.0", &["GCCcore/12.3.0"]),
            (
                "Python/3.11.3-GCCcore-12.3.0",
                &[
                    "bzip2/1.0.8-GCCcore-12.3.0",
                    "zlib/1.2.13-GCCcore-12.3.0",
                    "libreadline/8.2-GCCcore-12.3.0",
                    "SQLite/3.42.0-GCCcore-12.3.0",
                    "XZ/5.4.2-GCCcore-12.3.0",
                    "libffi/3.4.4-GCCcore-12.3.0",
                ],
            ),
            (
                "pybind11/2.11.1-GCCcore-12.3.0",
                &["Python/3.11.3-GCCcore-12.3.0"],
            ),
            (
                "SciPy-bundle/2023.07-gfbf-2023a",
                &[
                    "Python/3.11.3-GCCcore-12.3.0",
                    "FlexiBLAS/3.3.1-GCC-12.3.0",
                    "FFTW/3.3.10-GCC-12.3.0",
                    "pybind11/2.11.1-GCCcore-12.3.0",
                ],
            ),
            (
                "matplotlib/3.7.2-gfbf-2023a",
                &[
                    "Python/3.11.3-GCCcore-12.3.0",
                    "SciPy-bundle/2023.07-gfbf-2023a",
                ],
            ),
            (
                "HDF5/1.14.0-gompi-2023a",
                &["OpenMPI/4.1.5-GCC-12.3.0", "zlib/1.2.13-GCCcore-12.3.0"],
            ),
            ("netCDF/4.9.2-gompi-2023a", &["HDF5/1.14.0-gompi-2023a"]),
            (
                "GROMACS/2023.3-foss-2023a",
                &[
                    "foss/2023a",
                    "SciPy-bundle/2023.07-gfbf-2023a",
                    "HDF5/1.14.0-gompi-2023a",
                ],
            ),
        ];
        let stack = |platform: &str, failed_log: &str| -> Vec<ModuleStatus> {
            let blocked = |m: &str, deps: &[ModuleStatus]| {
                deps.iter().any(|d| {
                    matches!(d.state, ModuleState::Failed | ModuleState::Skipped)
                        && STACK
                            .iter()
                            .any(|(n, ds)| *n == m && ds.contains(&d.module.as_str()))
                })
            };
            let mut out: Vec<ModuleStatus> = Vec::new();
            for (name, deps) in STACK {
                let mut m = module(name, ModuleState::Built, deps);
                m.duration_s = Some(60 + 7 * name.len() as u64);
                if name.starts_with("OpenBLAS/") && !failed_log.is_empty() {
                    m = ModuleStatus {
                        deps: m.deps,
                        ..failed(
                            name,
                            ErrorClass::CompileError,
                            "make[2]: *** [Makefile:123: libs] Error 2\n\
                             ../kernel/arm64/sgemm_kernel_sve_v2x8.S: Error: selected processor \
                             does not support `ld1rw {z0.s}, p0/z, [x1]'",
                            Some(&format!(
                                "{platform}/logs/OpenBLAS/0.3.23-GCC-12.3.0/{failed_log}"
                            )),
                        )
                    };
                } else if blocked(name, &out) {
                    let culprit = out
                        .iter()
                        .find(|d| {
                            deps.contains(&d.module.as_str()) && d.state != ModuleState::Built
                        })
                        .map(|d| d.module.clone())
                        .unwrap_or_default();
                    m.state = ModuleState::Skipped;
                    m.error_class = Some(ErrorClass::DependencyFailed);
                    m.reason = Some(format!("needs {culprit}, which did not build"));
                    m.duration_s = None;
                }
                out.push(m);
            }
            out
        };
        let mut graviton = platform(
            "amzn-2023_graviton-3",
            stack(
                "amzn-2023_graviton-3",
                "easybuild-OpenBLAS-0.3.23-20261205.041502.log",
            ),
        );
        let mut epyc = platform("amzn-2023_epyc-gen-3", stack("amzn-2023_epyc-gen-3", ""));
        // The run failed before epyc's last modules were reached.
        for m in epyc.modules.iter_mut().rev().take(2) {
            m.state = ModuleState::NotBuilt;
            m.duration_s = None;
        }
        epyc = platform("amzn-2023_epyc-gen-3", epyc.modules);
        // A big platform, past the cap.
        let name = |i: usize| format!("py-pkg{i:03}/1.{}-GCCcore-12.3.0", i % 7);
        let h100 = platform(
            "amzn-2023_epyc-gen-3_h100",
            (0..420)
                .map(|i| {
                    let deps: Vec<String> = [i / 2, i / 3]
                        .iter()
                        .filter(|&&d| d < i)
                        .map(|&d| name(d))
                        .collect();
                    let state = match i {
                        333 => ModuleState::Failed,
                        i if i < 300 => ModuleState::Built,
                        i if i % 3 == 0 => ModuleState::Skipped,
                        _ => ModuleState::NotBuilt,
                    };
                    ModuleStatus {
                        deps,
                        ..module(&name(i), state, &[])
                    }
                })
                .collect(),
        );
        for p in [&mut graviton, &mut epyc] {
            p.build_seconds = p
                .modules
                .iter()
                .filter(|m| m.state == ModuleState::Built)
                .filter_map(|m| m.duration_s)
                .sum();
        }
        let mut s = run(vec![graviton, epyc, h100]);
        s.error = Some("States.TaskFailed".into());
        s.cause = Some(
            "{\"error\": \"States.TaskFailed\", \"cause\": \"2 platforms have failed builds\"}"
                .into(),
        );
        s
    }

    /// The sample run's page; written to `$EBFLEET_REPORT_SAMPLE` when that
    /// is set, for `tests/report/check.py` to open in a browser.
    #[test]
    fn the_sample_page() {
        let html = render(&sample());
        assert_well_formed(&html);
        assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
        assert_eq!(html.matches("<tr data-platform=").count(), 3);
        assert_eq!(html.matches("<svg class=\"graph\"").count(), 3);
        assert_eq!(html.matches("<table class=\"failures\"").count(), 2);
        assert!(html.contains("<figcaption data-left-out=\"120\">"));
        // Self-contained: no script, nothing fetched.
        assert!(!html.contains("<script") && !html.contains(" src=") && !html.contains("url("));
        assert!(!html.contains("href=\"http"));
        if let Some(path) = std::env::var_os("EBFLEET_REPORT_SAMPLE") {
            std::fs::write(&path, &html).expect("writing the sample page");
        }
    }
}
