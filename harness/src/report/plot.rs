//! Latency plots: cumulative distributions on a logarithmic latency axis,
//! as SVG. Shared by `suite` (one curve per scenario) and `load` (one per
//! run).

use std::path::Path;

use plotters::prelude::*;

use super::{RunReport, Status};

/// Draws `report`'s latency distributions, one per scenario that ran.
pub fn latency_svg(report: &RunReport, path: &Path) -> anyhow::Result<()> {
    let series: Vec<(String, &[(f64, f64)])> = report
        .scenarios
        .iter()
        .filter(|s| matches!(s.status, Status::Ran))
        .map(|s| (s.scenario.clone(), s.stats.cdf.as_slice()))
        .collect();
    let caption = format!("Latency by scenario: target {}, seed {}", report.target, report.seed);
    cdf_svg(path, &caption, "share of answered requests", &series)
}

/// Draws labelled `(latency ms, cumulative share)` curves to `path`,
/// creating its directory. Empty curves are left out.
pub fn cdf_svg(path: &Path, caption: &str, y_desc: &str, series: &[(String, &[(f64, f64)])]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, cdf_svg_string(caption, y_desc, series)?)?;
    Ok(())
}

/// The same plot as an SVG document in a string (for inline use).
pub fn cdf_svg_string(caption: &str, y_desc: &str, series: &[(String, &[(f64, f64)])]) -> anyhow::Result<String> {
    let mut svg = String::new();
    draw_cdf(&mut svg, caption, y_desc, series)?;
    Ok(svg)
}

fn draw_cdf(svg: &mut String, caption: &str, y_desc: &str, series: &[(String, &[(f64, f64)])]) -> anyhow::Result<()> {
    let series: Vec<_> = series.iter().filter(|(_, cdf)| !cdf.is_empty()).collect();
    let max_ms = series
        .iter()
        .flat_map(|(_, cdf)| cdf.iter().map(|p| p.0))
        .fold(1.0_f64, f64::max);
    let root = SVGBackend::with_string(svg, (960, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((0.05_f64..max_ms * 1.2).log_scale(), 0.0_f64..1.0)?;
    chart
        .configure_mesh()
        .x_desc("latency (ms, log scale)")
        .y_desc(y_desc)
        .draw()?;
    for (i, (label, cdf)) in series.into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points = cdf.iter().map(|&(ms, q)| (ms.max(0.05), q));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}
