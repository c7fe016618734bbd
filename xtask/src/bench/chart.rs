//! `docs/benchmarks.svg`: the hello call cost per variant as a bar chart.

use std::fmt::Write as _;

use super::{
    MICRO_FUNCTIONS, PEER_MICRO,
    criterion::{Micro, mean},
    report::human_time,
};

/// A horizontal bar chart of the hello call cost per variant, on a log scale, as SVG.
pub(super) fn chart(micro: &[Micro]) -> String {
    let rows: Vec<(&str, f64)> =
        MICRO_FUNCTIONS.iter().chain([&PEER_MICRO]).map(|f| (*f, mean(micro, "hello", f))).collect();
    let (width, row, left) = (760.0, 28.0, 190.0);
    let height = 60.0 + row * rows.len() as f64;
    let max_log = rows.iter().map(|(_, ns)| ns.log10()).fold(0.0, f64::max).ceil();
    let scale = |ns: f64| (ns.max(1.0).log10() / max_log) * (width - left - 110.0);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">One call of the hello plugin (log scale, lower is better)</text>\n"
    );
    for (i, (name, ns)) in rows.iter().enumerate() {
        let y = 40.0 + row * i as f64;
        let bar = scale(*ns);
        let _ = writeln!(
            svg,
            "<text x=\"{x}\" y=\"{ty}\" text-anchor=\"end\">{name}</text>\
             <rect x=\"{left}\" y=\"{y}\" width=\"{bar:.1}\" height=\"{h}\" fill=\"#4a78c2\"/>\
             <text x=\"{lx:.1}\" y=\"{ty}\">{label}</text>",
            x = left - 8.0,
            ty = y + 15.0,
            h = row - 8.0,
            lx = left + bar + 6.0,
            label = human_time(*ns),
        );
    }
    svg.push_str("</svg>\n");
    svg
}
