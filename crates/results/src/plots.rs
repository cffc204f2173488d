//! The pictures beside `summary.md`, as SVG (text stays text, no font files needed): accuracy per
//! epoch for every framework on one chart per model, median time per epoch as bars, images per
//! second against batch size or threads for a sweep (log-log), and a grid of sample images with
//! their labels. Charts are drawn from run reports alone, so `cargo xtask report`
//! can redraw them from committed JSON.

use std::collections::BTreeMap;

use plotters::coord::ranged1d::AsRangedCoord;
use plotters::prelude::*;

use common::mnist::{Dataset, Split, IMAGE_SIDE};
use common::ModelKind;

use crate::summary;
use crate::sweep;
use reports::Catalogue;
use reports::RunReport;

/// One picture: its file name and its SVG text.
pub struct Picture {
    pub file: String,
    pub title: String,
    pub svg: String,
}

/// A chart that could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw: {0}")]
pub struct DrawError(String);

fn err(e: impl std::fmt::Display) -> DrawError {
    DrawError(e.to_string())
}

/// A framework's colour, the same in every chart (the registry's, grey for a name it lacks), in
/// every profile (`tch (tuned)` is tch's colour).
fn colour(catalogue: &Catalogue, framework: &str) -> RGBColor {
    let name = framework.split(" (").next().unwrap_or(framework);
    let [r, g, b] = catalogue.colour(name);
    RGBColor(r, g, b)
}

/// The charts for a set of reports: per (dataset, model, device), accuracy per epoch and median
/// epoch time.
pub fn charts(reports: &[RunReport], catalogue: &Catalogue) -> Result<Vec<Picture>, DrawError> {
    let mut by_config: BTreeMap<(Dataset, ModelKind, String), Vec<&RunReport>> = BTreeMap::new();
    for r in reports.iter().filter(|r| !r.epochs.is_empty()) {
        by_config
            .entry((r.spec.dataset, r.spec.model, r.device()))
            .or_default()
            .push(r);
    }
    let mut out = Vec::new();
    for ((dataset, model, device), runs) in by_config {
        // Runs at several batch sizes or thread counts are a sweep: their curves would mix points,
        // so a sweep gets its throughput charts instead.
        let points: std::collections::BTreeSet<_> = runs
            .iter()
            .map(|r| (r.spec.batch_size, r.spec.threads))
            .collect();
        if points.len() > 1 {
            continue;
        }
        let stem = format!("{dataset}-{model}-{device}");
        let what = format!("{} on {} ({device})", model.title(), dataset.title());
        out.push(Picture {
            file: format!("{stem}-accuracy.svg"),
            title: format!("{what}: accuracy per epoch"),
            svg: accuracy_chart(&what, &runs, catalogue)?,
        });
        out.push(Picture {
            file: format!("{stem}-epoch-time.svg"),
            title: format!("{what}: time per epoch"),
            svg: time_chart(&what, &runs, catalogue)?,
        });
    }
    for series in sweep::series(reports, catalogue) {
        out.push(Picture {
            file: format!(
                "{}-{}-{}-images-per-second-by-{}.svg",
                series.dataset,
                series.model,
                series.device,
                series.axis.slug()
            ),
            title: series.title(),
            svg: throughput_chart(&series, catalogue)?,
        });
    }
    Ok(out)
}

/// What every chart shares, besides its axes: the canvas's size, the caption, the room for the y
/// axis's labels, and where the legend goes (none without one).
struct Frame {
    size: (u32, u32),
    caption: String,
    y_labels: u32,
    legend: Option<SeriesLabelPosition>,
}

/// A chart being drawn into an SVG text, on the axes `X` and `Y`.
type Chart<'a, X, Y> = ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>;

/// A chart on the axes `x` and `y`, drawn the same way each time: a white canvas, the caption,
/// then `draw` (the mesh and the series), then the legend, as SVG.
fn chart<X: AsRangedCoord, Y: AsRangedCoord>(
    frame: Frame,
    x: X,
    y: Y,
    draw: impl for<'a> FnOnce(
        &mut Chart<'a, X::CoordDescType, Y::CoordDescType>,
    ) -> Result<(), DrawError>,
) -> Result<String, DrawError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, frame.size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(frame.caption, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(frame.y_labels)
            .build_cartesian_2d(x, y)
            .map_err(err)?;
        draw(&mut chart)?;
        if let Some(position) = frame.legend {
            chart
                .configure_series_labels()
                .position(position)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// A legend's key for a solid line in `c`.
fn solid_key(c: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
}

/// Images per second against the series' axis, both logarithmic, a line per framework (with a dot
/// at each point that has a successful run).
fn throughput_chart(series: &sweep::Series, catalogue: &Catalogue) -> Result<String, DrawError> {
    let lines: Vec<(&str, Vec<(f64, f64)>)> = series
        .frameworks
        .iter()
        .map(|(framework, _)| {
            let points = series
                .points
                .iter()
                .filter_map(|&p| {
                    series
                        .images_per_second(framework, p)
                        .map(|v| (p as f64, v))
                })
                .collect();
            (framework.as_str(), points)
        })
        .collect();
    let values = || lines.iter().flat_map(|(_, p)| p.iter().map(|q| q.1));
    let low = values().fold(f64::INFINITY, f64::min);
    let high = values().fold(0.0f64, f64::max);
    // From a labelled tick below the slowest point to one above the fastest.
    let (low, high) = if low.is_finite() && high > 0.0 {
        (step_125(low / 1.2, false), step_125(high * 1.2, true))
    } else {
        (1.0, 10.0)
    };
    let first = series.points.first().copied().unwrap_or(1) as f64;
    let last = series.points.last().copied().unwrap_or(2) as f64;
    let (x_range, y_range) = ((first / 1.25).ln()..(last * 1.25).ln(), low.ln()..high.ln());
    let frame = Frame {
        size: (820, 500),
        caption: series.title(),
        y_labels: 64,
        legend: Some(free_corner(&lines, x_range, y_range)),
    };
    chart(
        frame,
        // A tick and a label at every point of the sweep, and none elsewhere: the axis says which
        // point is batch 32, 128 or 512.
        (first / 1.25..last * 1.25)
            .log_scale()
            .with_key_points(series.points.iter().map(|&p| p as f64).collect()),
        // Ticks at 1, 2 and 5 of each decade, so that no value goes unlabelled below the first
        // decade; no minor grid lines.
        (low..high)
            .log_scale()
            .with_key_points(log_ticks(low, high)),
        |chart| {
            chart
                .configure_mesh()
                .x_desc(series.axis.name())
                .y_desc("images per second (log)")
                .x_label_formatter(&|x| format!("{}", x.round() as u64))
                .y_label_formatter(&|y| summary::thousands(y.round() as usize))
                .draw()
                .map_err(err)?;
            for (framework, points) in &lines {
                let c = colour(catalogue, framework);
                chart
                    .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))
                    .map_err(err)?
                    .label(*framework)
                    .legend(solid_key(c));
                chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, 4, c.filled())))
                    .map_err(err)?;
            }
            Ok(())
        },
    )
}

/// The nearest value 1, 2 or 5 times a power of ten at or above `v` (`up`), or at or below it.
pub fn step_125(v: f64, up: bool) -> f64 {
    let decade = 10f64.powf(v.log10().floor());
    let steps = [1.0, 2.0, 5.0, 10.0].map(|m| m * decade);
    if up {
        steps
            .into_iter()
            .find(|&s| s >= v * (1.0 - 1e-12))
            .unwrap_or(10.0 * decade)
    } else {
        steps
            .into_iter()
            .rev()
            .find(|&s| s <= v * (1.0 + 1e-12))
            .unwrap_or(decade)
    }
}

/// The values 1, 2 and 5 times a power of ten between `low` and `high` (at least two of them: the
/// nearest ones outside the range are added when fewer fall inside), for a log axis's ticks.
pub fn log_ticks(low: f64, high: f64) -> Vec<f64> {
    if !(low > 0.0 && high > low && high.is_finite()) {
        return vec![];
    }
    let mut all = Vec::new();
    let mut decade = 10f64.powi(low.log10().floor() as i32 - 1);
    while decade <= high * 10.0 {
        for m in [1.0, 2.0, 5.0] {
            all.push(m * decade);
        }
        decade *= 10.0;
    }
    let inside: Vec<f64> = all
        .iter()
        .copied()
        .filter(|&v| v >= low * (1.0 - 1e-9) && v <= high * (1.0 + 1e-9))
        .collect();
    if inside.len() >= 2 {
        return inside;
    }
    // Too narrow a range for two of them: every tenth of a decade-step instead.
    let step = 10f64.powi((high - low).log10().floor() as i32);
    let mut v = (low / step).ceil() * step;
    let mut out = Vec::new();
    while v <= high {
        out.push(v);
        v += step;
    }
    out
}

/// The corner of a log-log chart whose legend (a seventh of the width, a line per series) covers
/// none of the lines drawn (sampled along each segment), the lower right when every corner does.
fn free_corner(
    lines: &[(&str, Vec<(f64, f64)>)],
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
) -> SeriesLabelPosition {
    let unit = |v: f64, r: &std::ops::Range<f64>| (v.ln() - r.start) / (r.end - r.start);
    let mut samples = Vec::new();
    for (_, points) in lines {
        for pair in points.windows(2) {
            for k in 0..=20 {
                let t = k as f64 / 20.0;
                let (a, b) = (pair[0], pair[1]);
                samples.push((
                    unit(a.0, &x) * (1.0 - t) + unit(b.0, &x) * t,
                    unit(a.1, &y) * (1.0 - t) + unit(b.1, &y) * t,
                ));
            }
        }
        samples.extend(points.iter().map(|p| (unit(p.0, &x), unit(p.1, &y))));
    }
    // The legend's share of the plot, as drawn at 820x500 (with a little to spare).
    let (w, h) = (0.15, (0.045 * lines.len() as f64 + 0.03).min(0.9));
    [
        (SeriesLabelPosition::LowerRight, 1.0 - w..1.0, 0.0..h),
        (SeriesLabelPosition::UpperRight, 1.0 - w..1.0, 1.0 - h..1.0),
        (SeriesLabelPosition::UpperLeft, 0.0..w, 1.0 - h..1.0),
        (SeriesLabelPosition::LowerLeft, 0.0..w, 0.0..h),
    ]
    .into_iter()
    .find(|(_, bx, by)| {
        !samples
            .iter()
            .any(|(sx, sy)| bx.contains(sx) && by.contains(sy))
    })
    .map_or(SeriesLabelPosition::LowerRight, |(p, _, _)| p)
}

/// Per framework, the mean over its runs of (train, test) accuracy after each epoch, in percent.
fn accuracy_curves(runs: &[&RunReport]) -> BTreeMap<String, Vec<(u32, f64, f64)>> {
    let mut sums: BTreeMap<String, BTreeMap<u32, (f64, f64, u32)>> = BTreeMap::new();
    for r in runs {
        let per_epoch = sums.entry(r.label()).or_default();
        for e in &r.epochs {
            let s = per_epoch.entry(e.epoch).or_insert((0.0, 0.0, 0));
            s.0 += e.train_accuracy * 100.0;
            s.1 += e.test_accuracy * 100.0;
            s.2 += 1;
        }
    }
    sums.into_iter()
        .map(|(f, per_epoch)| {
            let points = per_epoch
                .into_iter()
                .map(|(e, (tr, te, n))| (e, tr / f64::from(n), te / f64::from(n)))
                .collect();
            (f, points)
        })
        .collect()
}

fn accuracy_chart(
    what: &str,
    runs: &[&RunReport],
    catalogue: &Catalogue,
) -> Result<String, DrawError> {
    let curves = accuracy_curves(runs);
    let epochs = curves
        .values()
        .flat_map(|c| c.iter().map(|p| p.0))
        .max()
        .unwrap_or(1)
        .max(2);
    let lowest = curves
        .values()
        .flat_map(|c| c.iter().flat_map(|p| [p.1, p.2]))
        .fold(100.0f64, f64::min);
    // A floor a little below the lowest point, on a whole percent, so that the last epochs' small
    // differences stay visible.
    let floor = (lowest - 0.5).floor().clamp(0.0, 99.0);
    let frame = Frame {
        size: (820, 500),
        caption: format!("{what}: accuracy per epoch (solid: test, dashed: train)"),
        y_labels: 56,
        legend: Some(SeriesLabelPosition::LowerRight),
    };
    let x = (1u32..epochs).with_key_points((1..=epochs).collect());
    chart(frame, x, floor..100.0f64, |chart| {
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("accuracy (%)")
            .max_light_lines(0)
            .draw()
            .map_err(err)?;
        for (framework, points) in &curves {
            let c = colour(catalogue, framework);
            let test = points.iter().map(|p| (p.0, p.2));
            chart
                .draw_series(LineSeries::new(test, c.stroke_width(2)))
                .map_err(err)?
                .label(format!("{framework} test"))
                .legend(solid_key(c));
            let train = points.iter().map(|p| (p.0, p.1));
            chart
                .draw_series(DashedLineSeries::new(train, 6, 4, c.stroke_width(1)))
                .map_err(err)?
                .label(format!("{framework} train"))
                // Dashed in the legend as in the plot.
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (6, 0)], c.stroke_width(1))
                        + PathElement::new(vec![(10, 0), (16, 0)], c.stroke_width(1))
                });
        }
        Ok(())
    })
}

/// Per row, its label and the mean and standard deviation of its runs' median epochs, in display
/// order.
fn time_bars(runs: &[&RunReport], catalogue: &Catalogue) -> Vec<(String, f64, f64)> {
    let mut sorted: Vec<RunReport> = runs.iter().map(|r| (*r).clone()).collect();
    summary::sort(&mut sorted, catalogue);
    summary::groups(&sorted)
        .iter()
        .filter_map(|g| {
            let times: Vec<f64> = g
                .succeeded()
                .iter()
                .filter_map(|r| r.median_epoch_seconds())
                .collect();
            summary::mean_sd(&times).map(|(m, sd)| (g.first().label(), m, sd))
        })
        .collect()
}

fn time_chart(what: &str, runs: &[&RunReport], catalogue: &Catalogue) -> Result<String, DrawError> {
    // The x axis's units per bar.
    const UNITS: i32 = 20;
    let bars = time_bars(runs, catalogue);
    let top = bars
        .iter()
        .map(|b| b.1 + b.2)
        .fold(0.0f64, f64::max)
        .max(1e-3)
        * 1.15;
    let n = bars.len().max(1);
    let repeats = runs.iter().filter(|r| r.label() == runs[0].label()).count();
    let caption = if repeats > 1 {
        format!("{what}: median epoch 2..N, mean ± sd of {repeats} runs")
    } else {
        format!("{what}: median epoch 2..N")
    };
    let frame = Frame {
        size: (820, 440),
        caption,
        y_labels: 56,
        legend: None,
    };
    // Twenty units a bar, and a tick under the middle of each, labelled with its row.
    let x = (0i32..UNITS * n as i32)
        .with_key_points((0..n as i32).map(|i| UNITS * i + UNITS / 2).collect());
    chart(frame, x, 0f64..top, |chart| {
        let names: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .max_light_lines(0)
            .y_desc("seconds")
            .x_label_formatter(&|x| names.get((x / UNITS) as usize).cloned().unwrap_or_default())
            .draw()
            .map_err(err)?;
        for (i, (framework, mean, sd)) in bars.iter().enumerate() {
            let x = UNITS * i as i32;
            let c = colour(catalogue, framework);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x + 4, 0.0), (x + 16, *mean)],
                    c.filled(),
                )))
                .map_err(err)?;
            if *sd > 0.0 {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(x + 10, mean - sd), (x + 10, mean + sd)],
                        BLACK.stroke_width(1),
                    )))
                    .map_err(err)?;
            }
            chart
                .draw_series(std::iter::once(Text::new(
                    format!("{mean:.2} s"),
                    (x + 7, mean + sd + top * 0.05),
                    ("sans-serif", 14),
                )))
                .map_err(err)?;
        }
        Ok(())
    })
}

/// Grouped bars: one group per row (`groups`, each its values in the order of `series`), in the
/// row's colour, the first series solid and the later ones lighter, each bar labelled with its
/// value; `series` and what their shades mean go in the caption.
pub fn grouped_bars(
    caption: &str,
    unit: &str,
    groups: &[(String, Vec<f64>)],
    series: &[String],
    catalogue: &Catalogue,
) -> Result<String, DrawError> {
    let per = series.len().max(1) as i32;
    // Each bar 10 units wide, 8 more between groups.
    let width = 10 * per + 8;
    let top = groups
        .iter()
        .flat_map(|g| g.1.iter().copied())
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.2;
    let n = groups.len().max(1) as i32;
    let frame = Frame {
        size: (860, 440),
        caption: caption.to_string(),
        y_labels: 64,
        legend: None,
    };
    let x = (0i32..width * n).with_key_points((0..n).map(|i| width * i + width / 2).collect());
    chart(frame, x, 0f64..top, |chart| {
        let names: Vec<String> = groups.iter().map(|g| g.0.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .max_light_lines(0)
            .y_desc(unit)
            .x_label_formatter(&|x| names.get((x / width) as usize).cloned().unwrap_or_default())
            .draw()
            .map_err(err)?;
        for (i, (row, values)) in groups.iter().enumerate() {
            let c = colour(catalogue, row);
            for (j, &v) in values.iter().enumerate() {
                let x = width * i as i32 + 4 + 10 * j as i32;
                let shade = c.mix(1.0 - 0.45 * j as f64 / per as f64);
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x, 0.0), (x + 9, v)],
                        shade.filled(),
                    )))
                    .map_err(err)?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        summary::significant(v),
                        (x, v + top * 0.03),
                        ("sans-serif", 11),
                    )))
                    .map_err(err)?;
            }
        }
        Ok(())
    })
}

/// The first `count` images of `split` in a row, each titled with its label's name (dark ink on
/// white, as the tutorial shows them).
pub fn samples(dataset: Dataset, split: &Split, count: usize) -> Result<Picture, DrawError> {
    let count = count.min(split.len()).max(1);
    let names = dataset.class_names();
    let cell = 100u32;
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (cell * count as u32, cell + 30)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let scale = 3i32;
        let side = IMAGE_SIDE as i32;
        for i in 0..count.min(split.len()) {
            let x0 = i as i32 * cell as i32 + (cell as i32 - side * scale) / 2;
            let y0 = 28;
            let label = names
                .get(usize::from(split.labels[i]))
                .copied()
                .unwrap_or("?");
            root.draw(&Text::new(
                label.to_string(),
                (x0, 6),
                ("sans-serif", 15).into_font().color(&BLACK),
            ))
            .map_err(err)?;
            root.draw(&Rectangle::new(
                [(x0 - 1, y0 - 1), (x0 + side * scale, y0 + side * scale)],
                BLACK.mix(0.3).stroke_width(1),
            ))
            .map_err(err)?;
            let pixels =
                &split.images[i * IMAGE_SIDE * IMAGE_SIDE..(i + 1) * IMAGE_SIDE * IMAGE_SIDE];
            for (p, &v) in pixels.iter().enumerate() {
                if v == 0 {
                    continue;
                }
                let (r, c) = ((p / IMAGE_SIDE) as i32, (p % IMAGE_SIDE) as i32);
                let shade = 255 - v;
                root.draw(&Rectangle::new(
                    [
                        (x0 + c * scale, y0 + r * scale),
                        (x0 + (c + 1) * scale, y0 + (r + 1) * scale),
                    ],
                    RGBColor(shade, shade, shade).filled(),
                ))
                .map_err(err)?;
            }
        }
        root.present().map_err(err)?;
    }
    Ok(Picture {
        file: format!("{dataset}-samples.svg"),
        title: format!("The first {count} {} test images", dataset.title()),
        svg,
    })
}
