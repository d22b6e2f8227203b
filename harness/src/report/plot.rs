//! The latency plot of a run: one cumulative distribution per scenario on
//! a logarithmic latency axis, as SVG.

use std::path::Path;

use plotters::prelude::*;

use super::{RunReport, Status};

/// Draws `report`'s latency distributions to `path`.
pub fn latency_svg(report: &RunReport, path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let series: Vec<_> = report
        .scenarios
        .iter()
        .filter(|s| matches!(s.status, Status::Ran) && !s.stats.cdf.is_empty())
        .collect();
    let max_ms = series.iter().map(|s| s.stats.max_ms).fold(1.0_f64, f64::max).max(1.0);
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Latency by scenario: target {}, seed {}", report.target, report.seed),
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((0.05_f64..max_ms * 1.2).log_scale(), 0.0_f64..1.0)?;
    chart
        .configure_mesh()
        .x_desc("latency (ms, log scale)")
        .y_desc("share of answered requests")
        .draw()?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points = s.stats.cdf.iter().map(|&(ms, q)| (ms.max(0.05), q));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(s.scenario.clone())
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
