//! Quality-control charts as SVG, drawn on the server: the Levey-Jennings chart of one control
//! level and the moving-average chart of patient-based QC.
//!
//! Pure functions from numbers to markup: no IO, no clock and no time zone (the caller passes
//! `time_label` to write axis ticks in the lab's zone). Every element carries a CSS class for
//! the page's stylesheet *and* inline presentation attributes, so the SVG also reads right when
//! opened on its own or printed. Flags are never colour alone (UX.md §2.1): a violating point
//! has its own shape and its rule codes written beside it, and the SD lines differ by dash
//! pattern as well as colour, so the chart survives greyscale printing.
//!
//! With `role="img"` a screen reader announces the `<title>` and the `<desc>` summary; the table
//! of values beside the chart (UX.md §1.11) is its way to the single points.

use std::fmt::Write;

use crate::web::escape_xml;

/// One plotted value: a control result (Levey-Jennings) or an average (moving average).
#[derive(Debug, Clone, PartialEq)]
pub struct ChartPoint {
    /// The result's id, written as `data-id` for the page script and tests.
    pub id: i64,
    /// When it was measured, UTC microseconds.
    pub at: i64,
    /// The value (or the average) in the chart's unit.
    pub value: f64,
    /// Westgard rule codes this point violated (e.g. `2-2s`); empty when none.
    pub rules: Vec<String>,
    /// It violated a rejection rule, not only the 1-2s warning (or the average is out of control).
    pub rejected: bool,
    /// Tooltip text: time, value, z, run, who.
    pub note: String,
}

/// A change of control lot (or reagent lot) within the period.
#[derive(Debug, Clone, PartialEq)]
pub struct LotChange {
    /// When the new lot came into use, UTC microseconds.
    pub at: i64,
    /// What to write beside the line, e.g. "lot 4471".
    pub label: String,
}

/// A Levey-Jennings chart of one analyte × control level × lot.
pub struct LeveyJennings<'a> {
    /// E.g. "GLU · DEMOCHEM · level 2 (lot 4471)".
    pub title: &'a str,
    /// The analyte's unit, written after every value.
    pub unit: &'a str,
    /// Target mean of the control material.
    pub mean: f64,
    /// Target SD of the control material.
    pub sd: f64,
    /// The control results, in any order.
    pub points: &'a [ChartPoint],
    /// Lot changes, drawn when inside `from..=to`.
    pub lot_changes: &'a [LotChange],
    /// Start of the x axis, UTC microseconds.
    pub from: i64,
    /// End of the x axis, UTC microseconds.
    pub to: i64,
    /// Writes an axis tick in the lab's zone.
    pub time_label: &'a dyn Fn(i64) -> String,
}

/// A moving-average chart (patient-based QC) with a target and control limits.
pub struct MovingAverageChart<'a> {
    /// E.g. "NA · moving average of 20 patients".
    pub title: &'a str,
    /// The analyte's unit, written after every value.
    pub unit: &'a str,
    /// The expected average.
    pub target: f64,
    /// Lower control limit.
    pub lower_limit: f64,
    /// Upper control limit.
    pub upper_limit: f64,
    /// The averages; `rules` non-empty and `rejected` when out of control.
    pub points: &'a [ChartPoint],
    /// Start of the x axis, UTC microseconds.
    pub from: i64,
    /// End of the x axis, UTC microseconds.
    pub to: i64,
    /// Writes an axis tick in the lab's zone.
    pub time_label: &'a dyn Fn(i64) -> String,
}

/// The Levey-Jennings chart as a standalone `<svg>` element.
pub fn levey_jennings(chart: &LeveyJennings) -> String {
    match lj_chart(chart) {
        Some(c) => render(&c),
        None => message_svg(
            "lj-chart",
            chart.title,
            "No target SD set for this level: set the target mean and SD first",
        ),
    }
}

/// The moving-average chart as a standalone `<svg>` element.
pub fn moving_average_chart(chart: &MovingAverageChart) -> String {
    match ma_chart(chart) {
        Some(c) => render(&c),
        None => message_svg(
            "ma-chart",
            chart.title,
            "No control limits set for this average: set the target and limits first",
        ),
    }
}

// Layout in viewBox units. The left margin holds two label columns: "+3 SD" and "1234.5 mg/dL".
const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 350.0;
const LEFT: f64 = 150.0;
const RIGHT: f64 = 730.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 320.0;
/// Time ticks, both ends included (UX asks for 4–7 labels).
const TICKS: i128 = 5;
const NAME_X: f64 = LEFT - 6.0;
const VALUE_X: f64 = LEFT - 48.0;
const TICK_END: f64 = BOTTOM + 5.0;
const TICK_TEXT: f64 = BOTTOM + 18.0;
const LOT_TEXT: f64 = TOP + 12.0;
/// A white outline behind text, so it stays readable where it crosses a line.
const HALO: &str = r##" stroke="#fff" stroke-width="3" paint-order="stroke""##;
/// Reference-line labels closer than this are dropped, so a far outlier (which squeezes the
/// SD lines together) does not pile the labels on top of each other.
const LABEL_GAP: f64 = 12.0;

/// Maps time and value into the plot area. SVG y grows downward, so larger values get smaller y.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Plot {
    from: i64,
    to: i64,
    low: f64,
    high: f64,
}

impl Plot {
    /// `from..to` is widened to every point's time, so no point falls off the side either; an
    /// empty period gets 1 µs so x stays finite. `None` when the values span no finite range
    /// (an SD too small to register beside its mean), which would write `NaN` coordinates.
    fn new(from: i64, to: i64, low: f64, high: f64, points: &[&ChartPoint]) -> Option<Plot> {
        let from = points.iter().map(|p| p.at).fold(from, i64::min);
        let to = points.iter().map(|p| p.at).fold(to, i64::max).max(from.saturating_add(1));
        (low.is_finite() && high.is_finite() && low < high).then_some(Plot { from, to, low, high })
    }

    /// Linear in time (Sittig15: unequal intervals drawn equally distort slopes).
    pub(crate) fn x(&self, at: i64) -> f64 {
        // In f64, so extreme times cannot overflow the subtraction.
        LEFT + (RIGHT - LEFT) * (at as f64 - self.from as f64) / (self.to as f64 - self.from as f64)
    }

    pub(crate) fn y(&self, value: f64) -> f64 {
        BOTTOM - (BOTTOM - TOP) * (value - self.low) / (self.high - self.low)
    }
}

/// How a horizontal reference line looks. The dash pattern alone tells the kinds apart.
#[derive(Clone, Copy)]
struct LineStyle {
    class: &'static str,
    stroke: &'static str,
    dash: &'static str,
    width: f64,
}

const MEAN: LineStyle = LineStyle { class: "lj-mean", stroke: "#111", dash: "", width: 1.5 };
const SD1: LineStyle = LineStyle { class: "lj-sd1", stroke: "#9aa5b1", dash: "2 4", width: 1.0 };
const SD2: LineStyle = LineStyle { class: "lj-sd2", stroke: "#E69F00", dash: "8 4", width: 1.2 };
const SD3: LineStyle =
    LineStyle { class: "lj-sd3", stroke: "#D55E00", dash: "16 4 3 4", width: 1.5 };

struct RefLine {
    value: f64,
    name: String,
    style: LineStyle,
}

/// Everything `render` needs; the two public charts differ only in how they fill it.
struct Chart<'a> {
    kind: &'static str,
    title: &'a str,
    unit: &'a str,
    desc: String,
    empty: &'static str,
    /// In labelling priority: the first lines keep their labels when space runs out.
    lines: Vec<RefLine>,
    decimals: usize,
    /// Finite values only, in time order.
    points: Vec<&'a ChartPoint>,
    lot_changes: &'a [LotChange],
    plot: Plot,
    time_label: &'a dyn Fn(i64) -> String,
}

fn lj_chart<'a>(c: &'a LeveyJennings<'a>) -> Option<Chart<'a>> {
    if !(c.sd.is_finite() && c.sd > 0.0 && c.mean.is_finite()) {
        return None;
    }
    let points = plotted(c.points);
    // ±4 SD, widened symmetrically (the mean stays in the middle) so the furthest point keeps
    // half an SD of air and is never clipped.
    let reach = points.iter().map(|p| ((p.value - c.mean) / c.sd).abs() + 0.5).fold(4.0, f64::max);
    let plot = Plot::new(c.from, c.to, c.mean - reach * c.sd, c.mean + reach * c.sd, &points)?;
    let lines = [(0, MEAN), (3, SD3), (-3, SD3), (2, SD2), (-2, SD2), (1, SD1), (-1, SD1)]
        .into_iter()
        .map(|(k, style)| RefLine {
            value: c.mean + f64::from(k) * c.sd,
            name: if k == 0 { "Mean".into() } else { format!("{k:+} SD") },
            style,
        })
        .collect();
    let decimals = decimals(c.sd);
    let (from, to, n) =
        ((c.time_label)(c.from), (c.time_label)(c.to), plural(points.len(), "result"));
    let (mean, sd, unit) = (fixed(c.mean, decimals), fixed(c.sd, decimals), c.unit);
    let flagged = plural(
        points.iter().filter(|p| !p.rules.is_empty() || p.rejected).count(),
        "rule violation",
    );
    let rejections = points.iter().filter(|p| p.rejected).count();
    let kind = if rejections == 1 { "a rejection" } else { "rejections" };
    let desc = format!(
        "Levey-Jennings chart, {from} to {to}: {n}, target mean {mean} {unit}, SD {sd} {unit}; \
         {flagged} ({rejections} of them {kind})."
    );
    Some(Chart {
        kind: "lj-chart",
        title: c.title,
        unit: c.unit,
        desc,
        empty: "No QC results in this period",
        lines,
        decimals,
        points,
        lot_changes: c.lot_changes,
        plot,
        time_label: c.time_label,
    })
}

fn ma_chart<'a>(c: &'a MovingAverageChart<'a>) -> Option<Chart<'a>> {
    let (lower, upper) = (c.lower_limit, c.upper_limit);
    if ![c.target, lower, upper].iter().all(|v| v.is_finite()) || lower >= upper {
        return None;
    }
    let points = plotted(c.points);
    // The limits and every average, plus 15 % of air above and below.
    let low = points.iter().map(|p| p.value).fold(lower.min(c.target), f64::min);
    let high = points.iter().map(|p| p.value).fold(upper.max(c.target), f64::max);
    let air = (high - low) * 0.15;
    let plot = Plot::new(c.from, c.to, low - air, high + air, &points)?;
    let limit = LineStyle { class: "ma-limit", ..SD3 };
    let lines = vec![
        RefLine {
            value: c.target,
            name: "Target".into(),
            style: LineStyle { class: "ma-target", ..MEAN },
        },
        RefLine { value: upper, name: "Upper".into(), style: limit },
        RefLine { value: lower, name: "Lower".into(), style: limit },
    ];
    // The target-to-limit distance plays the part of the SD in rounding the labels.
    let decimals = decimals((upper - lower) / 2.0);
    let (from, to, n) =
        ((c.time_label)(c.from), (c.time_label)(c.to), plural(points.len(), "average"));
    let (target, lower, upper, unit) =
        (fixed(c.target, decimals), fixed(lower, decimals), fixed(upper, decimals), c.unit);
    let out = points.iter().filter(|p| !p.rules.is_empty() || p.rejected).count();
    let desc = format!(
        "Moving-average chart, {from} to {to}: {n}, target {target} {unit}, control limits {lower} \
         to {upper} {unit}; {out} out of control."
    );
    Some(Chart {
        kind: "ma-chart",
        title: c.title,
        unit: c.unit,
        desc,
        empty: "No averages in this period",
        lines,
        decimals,
        points,
        lot_changes: &[],
        plot,
        time_label: c.time_label,
    })
}

/// The drawable points: a non-finite value has no place on the chart (and would write `NaN`
/// coordinates). Stable sort, so points at the same time keep the caller's order.
fn plotted(points: &[ChartPoint]) -> Vec<&ChartPoint> {
    let mut out: Vec<&ChartPoint> = points.iter().filter(|p| p.value.is_finite()).collect();
    out.sort_by_key(|p| p.at);
    out
}

// Writing into a `String` cannot fail, so the `fmt::Result`s below are ignored.
fn render(c: &Chart) -> String {
    let p = c.plot;
    let mut svg = open(c.kind, c.title, &c.desc, p.from, p.to);
    let _ = write!(
        svg,
        r##"<path class="lj-axis" d="M{LEFT} {TOP}V{BOTTOM}H{RIGHT}" fill="none" stroke="#555"/>"##
    );

    let mut labelled: Vec<f64> = Vec::new();
    for line in &c.lines {
        let (y, LineStyle { class, stroke, dash, width }) = (p.y(line.value), line.style);
        let dash =
            if dash.is_empty() { String::new() } else { format!(r#" stroke-dasharray="{dash}""#) };
        let _ = write!(
            svg,
            r#"<line class="{class}" x1="{LEFT}" x2="{RIGHT}" y1="{y:.1}" y2="{y:.1}" stroke="{stroke}" stroke-width="{width}"{dash}/>"#
        );
        if labelled.iter().all(|&other| (other - y).abs() >= LABEL_GAP) {
            labelled.push(y);
            let (ty, name) = (y + 4.0, escape_xml(&line.name));
            let (value, unit) = (fixed(line.value, c.decimals), escape_xml(c.unit));
            let _ = write!(
                svg,
                r##"<text class="lj-label {class}" x="{NAME_X}" y="{ty:.1}" text-anchor="end" fill="#111">{name}</text><text class="lj-value" x="{VALUE_X}" y="{ty:.1}" text-anchor="end" fill="#555">{value} {unit}</text>"##
            );
        }
    }

    for i in 0..TICKS {
        // In i128, so the span of extreme times cannot overflow.
        let at =
            (i128::from(p.from) + (i128::from(p.to) - i128::from(p.from)) * i / (TICKS - 1)) as i64;
        let (x, text) = (p.x(at), escape_xml(&(c.time_label)(at)));
        let anchor = if i == 0 {
            "start"
        } else if i == TICKS - 1 {
            "end"
        } else {
            "middle"
        };
        let _ = write!(
            svg,
            r##"<line class="lj-tick" x1="{x:.1}" x2="{x:.1}" y1="{BOTTOM}" y2="{TICK_END}" stroke="#555"/><text class="lj-tick-label" x="{x:.1}" y="{TICK_TEXT}" text-anchor="{anchor}" fill="#555">{text}</text>"##
        );
    }

    for lot in c.lot_changes.iter().filter(|l| (p.from..=p.to).contains(&l.at)) {
        let (x, text) = (p.x(lot.at), escape_xml(&lot.label));
        // The label goes on the side with more room.
        let (lx, anchor) =
            if x > (LEFT + RIGHT) / 2.0 { (x - 4.0, "end") } else { (x + 4.0, "start") };
        let _ = write!(
            svg,
            r##"<line class="lj-lot" x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{BOTTOM}" stroke="#0072B2" stroke-dasharray="5 4"/><text class="lj-lot-label" x="{lx:.1}" y="{LOT_TEXT}" text-anchor="{anchor}" fill="#0072B2">{text}</text>"##
        );
    }

    if c.points.len() > 1 {
        let coords: Vec<String> =
            c.points.iter().map(|pt| format!("{:.1},{:.1}", p.x(pt.at), p.y(pt.value))).collect();
        let coords = coords.join(" ");
        let _ = write!(
            svg,
            r##"<polyline class="lj-series" points="{coords}" fill="none" stroke="#111" stroke-width="1"/>"##
        );
    }
    for pt in &c.points {
        point(&mut svg, &p, pt);
    }
    if c.points.is_empty() {
        let (x, y, text) = ((LEFT + RIGHT) / 2.0, (TOP + BOTTOM) / 2.0 - 8.0, escape_xml(c.empty));
        let _ = write!(
            svg,
            r##"<text class="lj-empty" x="{x}" y="{y}" text-anchor="middle" fill="#555" font-size="14"{HALO}>{text}</text>"##
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One point: a circle when accepted, a triangle for a warning, a square for a rejection, and
/// the rule codes as text, pushed toward the middle of the plot so they stay inside it.
fn point(svg: &mut String, p: &Plot, pt: &ChartPoint) {
    let (x, y) = (p.x(pt.at), p.y(pt.value));
    let (class, shape) = if pt.rejected {
        let (left, top) = (x - 4.5, y - 4.5);
        let rect = format!(
            r##"<rect x="{left:.1}" y="{top:.1}" width="9" height="9" fill="#D55E00" stroke="#111"/>"##
        );
        ("lj-point lj-reject violation", rect)
    } else if !pt.rules.is_empty() {
        // Symmetric in its bounding box, so the box's centre is the value.
        let (left, right, top, base) = (x - 5.5, x + 5.5, y - 5.0, y + 5.0);
        let triangle = format!(
            r##"<polygon points="{x:.1},{top:.1} {right:.1},{base:.1} {left:.1},{base:.1}" fill="#E69F00" stroke="#111"/>"##
        );
        ("lj-point lj-warning violation", triangle)
    } else {
        ("lj-point", format!(r##"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="#111"/>"##))
    };
    // `data-rules` is space-separated so CSS and scripts can match `[data-rules~="2-2s"]`.
    let (id, value, rules, note) =
        (pt.id, pt.value, escape_xml(&pt.rules.join(" ")), escape_xml(&pt.note));
    let _ = write!(
        svg,
        r#"<g class="{class}" data-id="{id}" data-value="{value}" data-rules="{rules}"><title>{note}</title>{shape}"#
    );
    if !pt.rules.is_empty() {
        let ty = if y < (TOP + BOTTOM) / 2.0 { y + 17.0 } else { y - 9.0 };
        let anchor = if x > RIGHT - 30.0 {
            "end"
        } else if x < LEFT + 30.0 {
            "start"
        } else {
            "middle"
        };
        let codes = escape_xml(&pt.rules.join(", "));
        let _ = write!(
            svg,
            r##"<text class="lj-rule" x="{x:.1}" y="{ty:.1}" text-anchor="{anchor}" font-weight="700" fill="#111"{HALO}>{codes}</text>"##
        );
    }
    svg.push_str("</g>");
}

/// The `<svg>` start tag, its accessible name and description, a white background (for print)
/// and the visible title.
fn open(kind: &str, title: &str, desc: &str, from: i64, to: i64) -> String {
    let (id, title, desc) = (chart_id(title, from, to), escape_xml(title), escape_xml(desc));
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="qc-chart {kind}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{id}-title {id}-desc" font-family="system-ui, sans-serif" font-size="11"><title id="{id}-title">{title}</title><desc id="{id}-desc">{desc}</desc><rect class="lj-bg" width="{WIDTH}" height="{HEIGHT}" fill="#fff"/><text class="lj-title" x="{LEFT}" y="22" font-size="13" font-weight="700" fill="#111">{title}</text>"##
    )
}

/// A chart that cannot be drawn: the title and what to do about it.
fn message_svg(kind: &str, title: &str, message: &str) -> String {
    let (x, y, text) = (WIDTH / 2.0, HEIGHT / 2.0, escape_xml(message));
    open(kind, title, message, 0, 0)
        + &format!(
            r##"<text class="lj-message" x="{x}" y="{y}" text-anchor="middle" fill="#111" font-size="14">{text}</text></svg>"##
        )
}

/// Ids for `aria-labelledby`, distinct per chart so several charts fit on one page. FNV-1a over
/// the title and period: deterministic, so the same chart always renders the same bytes.
fn chart_id(title: &str, from: i64, to: i64) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in title.bytes().chain(from.to_le_bytes()).chain(to.to_le_bytes()) {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("qc{hash:016x}")
}

/// Decimals that show the SD (or step) with two significant digits: SD 2.5 → 1, 0.12 → 2, 15 → 0.
fn decimals(step: f64) -> usize {
    (1 - step.log10().floor() as i32).clamp(0, 4) as usize
}

/// `v` rounded to `decimals`, with a leading zero and never "-0.0".
fn fixed(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    match s.strip_prefix('-') {
        Some(rest) if rest.bytes().all(|b| b == b'0' || b == b'.') => rest.to_string(),
        _ => s,
    }
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(at: i64) -> String {
        format!("t{at}")
    }

    fn pt(id: i64, at: i64, value: f64, rules: &[&str], rejected: bool) -> ChartPoint {
        let rules = rules.iter().map(|r| r.to_string()).collect();
        ChartPoint { id, at, value, rules, rejected, note: format!("point {id}") }
    }

    /// Mean 100, SD 2, period 0..1000 µs: ±4 SD over 280 px puts 1 SD at 35 px, 1 µs at 0.58 px.
    fn lj<'a>(points: &'a [ChartPoint], lots: &'a [LotChange]) -> LeveyJennings<'a> {
        LeveyJennings {
            title: "GLU · DEMOCHEM · level 2 (lot 4471)",
            unit: "mg/dL",
            mean: 100.0,
            sd: 2.0,
            points,
            lot_changes: lots,
            from: 0,
            to: 1000,
            time_label: &label,
        }
    }

    fn plot_of(chart: &LeveyJennings) -> Plot {
        lj_chart(chart).expect("valid SD").plot
    }

    /// The start tags `<name …>` in `svg`. Values are escaped, so the first `>` ends the tag.
    fn tags<'s>(svg: &'s str, name: &str) -> Vec<&'s str> {
        let open = format!("<{name} ");
        svg.match_indices(&open)
            .map(|(i, _)| &svg[i..i + svg[i..].find('>').unwrap() + 1])
            .collect()
    }

    fn attr<'s>(tag: &'s str, name: &str) -> &'s str {
        let key = format!(" {name}=\"");
        let start = tag.find(&key).unwrap_or_else(|| panic!("no {name} in {tag}")) + key.len();
        &tag[start..start + tag[start..].find('"').unwrap()]
    }

    fn num(tag: &str, name: &str) -> f64 {
        attr(tag, name).parse().unwrap()
    }

    fn with_class<'s>(svg: &'s str, name: &str, class: &str) -> Vec<&'s str> {
        tags(svg, name)
            .into_iter()
            .filter(|t| t.contains(" class=") && attr(t, "class").split(' ').any(|c| c == class))
            .collect()
    }

    /// Each point's `<g …>…</g>`, in document order.
    fn point_groups(svg: &str) -> Vec<&str> {
        svg.match_indices(r#"<g class="lj-point"#)
            .map(|(i, _)| &svg[i..i + svg[i..].find("</g>").unwrap()])
            .collect()
    }

    /// The centre of a point's mark (the centre of its bounding box, for any of the 3 shapes).
    fn centre(group: &str) -> (f64, f64) {
        if let Some(c) = tags(group, "circle").first() {
            return (num(c, "cx"), num(c, "cy"));
        }
        if let Some(r) = tags(group, "rect").first() {
            return (num(r, "x") + num(r, "width") / 2.0, num(r, "y") + num(r, "height") / 2.0);
        }
        let v: Vec<f64> = attr(tags(group, "polygon")[0], "points")
            .split([' ', ','])
            .map(|n| n.parse().unwrap())
            .collect();
        let mid = |axis: usize| {
            let c = v.iter().skip(axis).step_by(2);
            (c.clone().cloned().fold(f64::MAX, f64::min) + c.cloned().fold(f64::MIN, f64::max))
                / 2.0
        };
        (mid(0), mid(1))
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 0.06 // coordinates are written to 0.1
    }

    #[test]
    fn sd_lines_are_centred_ordered_and_evenly_spaced() {
        let points = [pt(1, 500, 101.0, &[], false)];
        let chart = lj(&points, &[]);
        let svg = levey_jennings(&chart);
        let mean = with_class(&svg, "line", "lj-mean");
        assert_eq!(mean.len(), 1);
        assert_eq!(num(mean[0], "y1"), 180.0);
        assert_eq!(num(mean[0], "y1"), (TOP + BOTTOM) / 2.0);
        assert_eq!(plot_of(&chart).y(100.0), 180.0);
        let ys = |class| -> Vec<f64> {
            with_class(&svg, "line", class).iter().map(|l| num(l, "y1")).collect()
        };
        // +k SD first, then -k SD (the labelling order); 35 px per SD.
        assert_eq!(ys("lj-sd3"), [75.0, 285.0]);
        assert_eq!(ys("lj-sd2"), [110.0, 250.0]);
        assert_eq!(ys("lj-sd1"), [145.0, 215.0]);
        let dash = |class| attr(with_class(&svg, "line", class)[0], "stroke-dasharray").to_string();
        assert!(dash("lj-sd1") != dash("lj-sd2") && dash("lj-sd2") != dash("lj-sd3"));
        assert!(!with_class(&svg, "line", "lj-mean")[0].contains("stroke-dasharray"));
        for text in
            [">Mean<", ">+3 SD<", ">-2 SD<", ">106.0 mg/dL<", ">98.0 mg/dL<", ">100.0 mg/dL<"]
        {
            assert!(svg.contains(text), "missing {text}");
        }
    }

    #[test]
    fn points_sit_at_their_values_in_time_order() {
        // Out of order on purpose; the chart sorts by time.
        let points = [
            pt(3, 1000, 95.5, &[], false),
            pt(1, 0, 100.0, &[], false),
            pt(2, 400, 103.1, &[], false),
        ];
        let chart = lj(&points, &[]);
        let (svg, plot) = (levey_jennings(&chart), plot_of(&chart));
        let groups = point_groups(&svg);
        let ids: Vec<&str> = groups.iter().map(|g| attr(g, "data-id")).collect();
        assert_eq!(ids, ["1", "2", "3"]);
        let xs: Vec<f64> = groups.iter().map(|g| centre(g).0).collect();
        assert_eq!(xs, [150.0, 382.0, 730.0]);
        assert!(
            xs.windows(2).all(|w| w[0] < w[1]) && xs.iter().all(|x| (LEFT..=RIGHT).contains(x))
        );
        for g in &groups {
            let value: f64 = attr(g, "data-value").parse().unwrap();
            assert!(close(centre(g).1, plot.y(value)), "{g}");
        }
        assert_eq!(centre(groups[1]).1, 125.8); // 180 - 3.1/2 * 35 = 125.75, written to 0.1
        assert_eq!(
            attr(tags(&svg, "polyline")[0], "points"),
            "150.0,180.0 382.0,125.8 730.0,258.8"
        );
        assert!(svg.contains("<title>point 2</title>"));
    }

    #[test]
    fn violations_are_marked_by_shape_class_and_rule_code() {
        let points = [
            pt(1, 100, 101.0, &[], false),
            pt(2, 500, 104.4, &["1-2s"], false),
            pt(3, 900, 94.6, &["2-2s", "R-4s"], true),
        ];
        let chart = lj(&points, &[]);
        let (svg, plot) = (levey_jennings(&chart), plot_of(&chart));
        let g = point_groups(&svg);
        for (group, p) in g.iter().zip(&points) {
            let (x, y) = centre(group);
            assert!(close(x, plot.x(p.at)) && close(y, plot.y(p.value)), "{group}");
        }
        assert_eq!(attr(g[0], "class"), "lj-point");
        assert_eq!((tags(g[0], "circle").len(), tags(g[0], "text").len()), (1, 0));

        assert_eq!(attr(g[1], "class"), "lj-point lj-warning violation");
        assert_eq!((tags(g[1], "polygon").len(), tags(g[1], "circle").len()), (1, 0));
        assert!(g[1].contains(">1-2s</text>"));
        // Above the mean, so the code sits below the mark, inside the plot: 180 - 2.2 * 35 + 17.
        assert_eq!(num(tags(g[1], "text")[0], "y"), 120.0);

        assert_eq!(attr(g[2], "class"), "lj-point lj-reject violation");
        assert_eq!((tags(g[2], "rect").len(), tags(g[2], "circle").len()), (1, 0));
        assert_eq!(attr(g[2], "data-rules"), "2-2s R-4s");
        assert!(g[2].contains(">2-2s, R-4s</text>"));
        // Below the mean, so the code sits above the mark: 180 + 5.4/2 * 35 - 9.
        assert_eq!(num(tags(g[2], "text")[0], "y"), 265.5);
        assert_eq!(with_class(&svg, "g", "violation").len(), 2);
        assert!(svg.contains("3 results, target mean 100.0 mg/dL, SD 2.0 mg/dL; 2 rule violations (1 of them a rejection)"));
    }

    #[test]
    fn a_far_outlier_widens_the_range_and_stays_inside() {
        let points = [pt(1, 500, 110.0, &["1-3s"], true)]; // mean + 5 SD
        let chart = lj(&points, &[]);
        let (svg, plot) = (levey_jennings(&chart), plot_of(&chart));
        let (_, y) = centre(point_groups(&svg)[0]);
        // Range ±5.5 SD: 180 - 140 * 5 / 5.5 = 52.73.
        assert!(close(y, 52.727) && close(y, plot.y(110.0)));
        assert!(TOP <= y - 4.5 && y + 4.5 <= HEIGHT);
        assert_eq!(num(with_class(&svg, "line", "lj-mean")[0], "y1"), 180.0);
        let text_ys: Vec<f64> = tags(&svg, "text").iter().map(|t| num(t, "y")).collect();
        assert!(text_ys.iter().all(|y| (0.0..=HEIGHT).contains(y)));
    }

    #[test]
    fn lot_changes_and_ticks_are_at_their_times() {
        let lots = [
            LotChange { at: 250, label: "lot 4471".into() },
            LotChange { at: 2000, label: "outside".into() },
        ];
        let svg = levey_jennings(&lj(&[], &lots));
        let lines = with_class(&svg, "line", "lj-lot");
        assert_eq!(lines.len(), 1);
        assert_eq!((num(lines[0], "x1"), num(lines[0], "x2")), (295.0, 295.0)); // 150 + 580 / 4
        assert_eq!(attr(lines[0], "stroke-dasharray"), "5 4");
        assert!(svg.contains(">lot 4471</text>") && !svg.contains("outside"));
        let ticks: Vec<f64> =
            with_class(&svg, "line", "lj-tick").iter().map(|t| num(t, "x1")).collect();
        assert_eq!(ticks, [150.0, 295.0, 440.0, 585.0, 730.0]);
        for t in ["t0", "t250", "t500", "t750", "t1000"] {
            assert!(svg.contains(&format!(">{t}</text>")), "missing tick {t}");
        }
    }

    #[test]
    fn text_is_escaped() {
        let mut points = [pt(1, 10, 100.0, &["<b>"], false)];
        points[0].note = r#"a & b "quoted" 'single'"#.into();
        let chart = LeveyJennings {
            title: "<script>alert(1)</script>",
            unit: "µmol/L <x>",
            ..lj(&points, &[])
        };
        let svg = levey_jennings(&chart);
        assert!(!svg.contains("<script") && !svg.contains("<b>") && !svg.contains("<x>"));
        assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(svg.contains("<title>a &amp; b &quot;quoted&quot; &#39;single&#39;</title>"));
        assert!(svg.contains(r#"data-rules="&lt;b&gt;""#) && svg.contains("µmol/L &lt;x&gt;"));
        assert_eq!(escape_xml(r#"<&>"'"#), "&lt;&amp;&gt;&quot;&#39;");
    }

    #[test]
    fn an_empty_period_draws_the_axes_and_says_so() {
        let svg = levey_jennings(&lj(&[], &[]));
        assert!(svg.contains(">No QC results in this period</text>"));
        assert!(point_groups(&svg).is_empty() && tags(&svg, "polyline").is_empty());
        assert_eq!(with_class(&svg, "line", "lj-mean").len(), 1);
        assert_eq!(with_class(&svg, "line", "lj-tick").len(), 5);
        assert_eq!(with_class(&svg, "path", "lj-axis").len(), 1);
    }

    #[test]
    fn without_a_target_sd_the_chart_says_what_to_do() {
        for sd in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let svg = levey_jennings(&LeveyJennings { sd, ..lj(&[], &[]) });
            assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"));
            assert!(svg.contains(r#"role="img""#));
            assert!(
                svg.contains("No target SD set for this level: set the target mean and SD first")
            );
            assert!(!svg.contains("NaN") && !svg.contains("lj-mean"));
        }
        // An SD that vanishes beside its mean spans no range: the same message, not `NaN`.
        let svg = levey_jennings(&LeveyJennings { mean: 1e20, sd: 1e-10, ..lj(&[], &[]) });
        assert!(svg.contains("No target SD set") && !svg.contains("NaN"));
    }

    #[test]
    fn the_accessible_name_and_description_are_linked() {
        let svg = levey_jennings(&lj(&[pt(1, 5, 100.0, &[], false)], &[]));
        let root = tags(&svg, "svg")[0];
        assert_eq!(attr(root, "viewBox"), "0 0 760 350");
        let ids: Vec<&str> = attr(root, "aria-labelledby").split(' ').collect();
        assert_eq!(attr(tags(&svg, "title")[0], "id"), ids[0]);
        assert_eq!(attr(tags(&svg, "desc")[0], "id"), ids[1]);
        assert!(svg.contains("Levey-Jennings chart, t0 to t1000: 1 result,"));
        // Another chart on the same page gets other ids.
        let other = levey_jennings(&LeveyJennings { title: "GLU · level 1", ..lj(&[], &[]) });
        assert_ne!(attr(tags(&other, "svg")[0], "aria-labelledby"), attr(root, "aria-labelledby"));
    }

    #[test]
    fn moving_average_shares_the_look_with_its_own_lines() {
        let points =
            [pt(1, 0, 101.0, &[], false), pt(2, 1000, 107.0, &["above upper limit"], true)];
        let chart = MovingAverageChart {
            title: "NA · moving average",
            unit: "mmol/L",
            target: 100.0,
            lower_limit: 95.0,
            upper_limit: 105.0,
            points: &points,
            from: 0,
            to: 1000,
            time_label: &label,
        };
        let svg = moving_average_chart(&chart);
        let plot = ma_chart(&chart).unwrap().plot;
        // Range 95..107 plus 15 % (1.8) each side: 93.2..108.8, so y(100) = 320 - 280 * 6.8 / 15.6.
        let target = with_class(&svg, "line", "ma-target");
        assert!(close(num(target[0], "y1"), 197.95) && close(num(target[0], "y1"), plot.y(100.0)));
        let limits: Vec<f64> =
            with_class(&svg, "line", "ma-limit").iter().map(|l| num(l, "y1")).collect();
        assert!(close(limits[0], plot.y(105.0)) && close(limits[1], plot.y(95.0)));
        assert!(limits[0] < num(target[0], "y1") && num(target[0], "y1") < limits[1]);
        let g = point_groups(&svg);
        assert_eq!(attr(g[1], "class"), "lj-point lj-reject violation");
        assert!(close(centre(g[1]).1, plot.y(107.0)) && centre(g[1]).1 > TOP);
        assert!(svg.contains(">Target<") && svg.contains(">105.0 mmol/L<"));
        assert!(svg.contains("2 averages, target 100.0 mmol/L, control limits 95.0 to 105.0 mmol/L; 1 out of control."));

        let bad = moving_average_chart(&MovingAverageChart { lower_limit: 105.0, ..chart });
        assert!(bad.contains("No control limits set") && !bad.contains("ma-target"));
    }

    #[test]
    fn labels_round_to_the_sd_and_never_show_minus_zero() {
        assert_eq!((decimals(2.5), decimals(0.12), decimals(15.0), decimals(1e-9)), (1, 2, 0, 4));
        assert_eq!(fixed(-0.04, 1), "0.0");
        assert_eq!(fixed(-0.06, 1), "-0.1");
        assert_eq!(fixed(0.5, 2), "0.50");
    }
}
