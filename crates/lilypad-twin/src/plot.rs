//! PNG plots of a twin run, drawn with the `plotters` crate from the numbers in [`crate::figures`].
//!
//! Text needs a TrueType font: DejaVu Sans from the machine (Debian `fonts-dejavu-core`), or the
//! file named by `LILYPAD_TWIN_FONT`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::TwinError;
use crate::figures::{CollusionPoint, Estimate, ProfitCurve, QTrace};

/// Width and height of every plot, pixels.
pub const SIZE: (u32, u32) = (1000, 650);

/// The environment variable naming a TrueType font to draw text with, instead of [`DEFAULT_FONT`].
pub const FONT_ENV: &str = "LILYPAD_TWIN_FONT";

/// The font used when [`FONT_ENV`] is unset (Debian package `fonts-dejavu-core`).
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

const FONT: &str = "sans-serif";

/// One colour per series, in order (the "tab10" palette).
const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

type Chart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;
type DrawResult =
    Result<(), DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>>;

/// (a) A cheater's profit per job against the collateral multiplier, one measured series (with
/// its 95% interval) and one theory line per check rate.
pub fn profit_vs_collateral(path: &Path, curves: &[ProfitCurve]) -> Result<(), TwinError> {
    if curves
        .iter()
        .all(|c| c.measured.is_empty() && c.theory.is_empty())
    {
        return Err(nothing("no profit curves, or none with a point"));
    }
    let xs = curves.iter().flat_map(|c| {
        c.measured
            .iter()
            .map(|p| p.0)
            .chain(c.theory.iter().map(|p| p.0))
    });
    let ys = curves.iter().flat_map(|c| {
        let measured = c
            .measured
            .iter()
            .flat_map(|(_, e)| [e.mean - e.ci95, e.mean + e.ci95]);
        measured.chain(c.theory.iter().map(|p| p.1))
    });
    let (x, y) = (span(xs), span(ys.chain([0.0])));
    let zero = Series::Line {
        points: vec![(x.start, 0.0), (x.end, 0.0)],
        style: BLACK.mix(0.5).stroke_width(1),
        label: None,
    };
    let mut series = vec![zero];
    for (i, curve) in curves.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let label = format!("checked p = {}%", f64::from(curve.check_bps) / 100.0);
        series.push(Series::Measured {
            points: curve.measured.clone(),
            colour,
            label,
        });
        series.push(Series::Theory {
            points: finite(curve.theory.iter().copied()),
            colour,
            label: (i + 1 == curves.len()).then(|| "theory (1-p)(1-f) - p·m".into()),
            markers: false,
        });
    }
    render(
        path,
        Frame {
            title: "A cheater's profit per job against collateral",
            x_desc: "collateral (multiple of the price)",
            y_desc: "cheater's profit per job (multiple of the price)",
            x,
            y,
            whole_x: false,
            series,
        },
    )
}

/// (b) An adaptive cheater's q round by round, one line per trace.
pub fn adaptive_q(path: &Path, traces: &[QTrace]) -> Result<(), TwinError> {
    let rounds = traces.iter().map(|t| t.q.len()).max().unwrap_or(0);
    if rounds == 0 {
        return Err(nothing("no q traces, or none with a round"));
    }
    let series = traces.iter().enumerate().map(|(i, trace)| Series::Line {
        points: finite(
            trace
                .q
                .iter()
                .enumerate()
                .map(|(r, &q)| ((r + 1) as f64, q)),
        ),
        style: COLOURS[i % COLOURS.len()].stroke_width(2),
        label: Some(trace.label.clone()),
    });
    render(
        path,
        Frame {
            title: "Adaptive cheater: chance of cheating by round",
            x_desc: "round",
            y_desc: "q (chance of cheating)",
            x: span([1.0, rounds as f64]),
            y: 0.0..1.0,
            whole_x: true,
            series: series.collect(),
        },
    )
}

/// (c) Share of wrong results accepted against the number of colluding mediators, one line per
/// consortium (N, k), measured with its interval and the hypergeometric theory.
pub fn collusion(path: &Path, points: &[CollusionPoint]) -> Result<(), TwinError> {
    if points.is_empty() {
        return Err(nothing("no collusion points"));
    }
    let mut groups: BTreeMap<(u8, u8, u32), Vec<&CollusionPoint>> = BTreeMap::new();
    for p in points {
        groups
            .entry((p.per_case, p.threshold, p.pool))
            .or_default()
            .push(p);
    }
    let (mut series, last) = (Vec::new(), groups.len() - 1);
    for (i, ((n, k, pool), mut group)) in groups.into_iter().enumerate() {
        group.sort_by_key(|p| p.colluders);
        let colour = COLOURS[i % COLOURS.len()];
        let x = |p: &CollusionPoint| f64::from(p.colluders);
        series.push(Series::Measured {
            points: group.iter().map(|p| (x(p), p.accepted)).collect(),
            colour,
            label: format!("N={n}, k={k}, pool={pool}"),
        });
        series.push(Series::Theory {
            points: finite(group.iter().map(|p| (x(p), p.theory))),
            colour,
            label: (i == last).then(|| "theory: P(fewer than k honest among N drawn)".into()),
            markers: true,
        });
    }
    render(
        path,
        Frame {
            title: "Wrong results accepted against colluding mediators",
            x_desc: "colluding mediators in the pool",
            y_desc: "share of wrong results accepted",
            x: span(points.iter().map(|p| f64::from(p.colluders))),
            y: 0.0..1.0,
            whole_x: true,
            series,
        },
    )
}

/// A chart: its title, axes, where the legend goes, and what is drawn in it.
struct Frame<'t> {
    title: &'t str,
    x_desc: &'t str,
    y_desc: &'t str,
    x: Range<f64>,
    y: Range<f64>,
    /// Label only whole numbers on the x axis (it counts something).
    whole_x: bool,
    series: Vec<Series>,
}

/// One thing drawn in a chart; those with a label are in the legend.
enum Series {
    /// A solid line.
    Line {
        points: Vec<(f64, f64)>,
        style: ShapeStyle,
        label: Option<String>,
    },
    /// Means joined by a line, each with its 95% interval as a vertical bar.
    Measured {
        points: Vec<(f64, Estimate)>,
        colour: RGBColor,
        label: String,
    },
    /// A dashed line, with a cross at each point when `markers`.
    Theory {
        points: Vec<(f64, f64)>,
        colour: RGBColor,
        label: Option<String>,
        markers: bool,
    },
}

/// Draws `frame` into a PNG at `path`.
fn render(path: &Path, frame: Frame<'_>) -> Result<(), TwinError> {
    font()?;
    let legend = quietest_corner(&frame);
    let whole = |v: &f64| match (v - v.round()).abs() < 1e-6 {
        true => format!("{:.0}", v.round() + 0.0),
        false => String::new(),
    };
    let draw = || -> DrawResult {
        let root = BitMapBackend::new(path, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(frame.title, (FONT, 26))
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(75)
            .build_cartesian_2d(frame.x, frame.y)?;
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(frame.x_desc)
            .y_desc(frame.y_desc)
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 17))
            .light_line_style(BLACK.mix(0.05));
        if frame.whole_x {
            mesh.x_label_formatter(&whole);
        }
        mesh.draw()?;
        for series in frame.series {
            match series {
                Series::Line {
                    points,
                    style,
                    label,
                } => {
                    let drawn = chart.draw_series(LineSeries::new(points, style))?;
                    if let Some(label) = label {
                        let sample = move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style);
                        drawn.label(label).legend(sample);
                    }
                }
                Series::Measured {
                    points,
                    colour,
                    label,
                } => {
                    measured(&mut chart, &points, colour, label)?;
                }
                Series::Theory {
                    points,
                    colour,
                    label,
                    markers,
                } => {
                    let cross = |&c: &(f64, f64)| Cross::new(c, 4, colour.stroke_width(1));
                    if markers {
                        chart.draw_series(points.iter().map(cross))?;
                    }
                    let style = colour.stroke_width(2);
                    let drawn = chart.draw_series(DashedLineSeries::new(points, 8, 6, style))?;
                    if let Some(label) = label {
                        let grey = BLACK.mix(0.6).stroke_width(2);
                        // A dashed grey sample: the dashes mean theory, whatever the colour.
                        drawn.label(label).legend(move |(x, y)| {
                            EmptyElement::at((x, y))
                                + PathElement::new([(0, 0), (7, 0)], grey)
                                + PathElement::new([(13, 0), (20, 0)], grey)
                        });
                    }
                }
            }
        }
        chart
            .configure_series_labels()
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .position(legend)
            .draw()?;
        root.present()
    };
    draw().map_err(|e| TwinError::Plot(format!("writing {}: {e}", path.display())))
}

/// The corner of the plot the drawn lines pass through least, for the legend.
fn quietest_corner(frame: &Frame<'_>) -> SeriesLabelPosition {
    let (x, y) = (&frame.x, &frame.y);
    let labelled = frame.series.iter().filter(|s| s.labelled()).count() as f64;
    let (w, h) = (0.4, (0.08 + 0.05 * labelled).min(0.6));
    let mut crowd = [0usize; 4]; // upper right, upper left, lower right, lower left
    for path in frame.series.iter().map(Series::path) {
        let along =
            |a: (f64, f64), b: (f64, f64), t: f64| (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1));
        let samples = path
            .windows(2)
            .flat_map(|p| (0..8).map(move |t| along(p[0], p[1], f64::from(t) / 8.0)));
        for (px, py) in samples.chain(path.last().copied()) {
            let (fx, fy) = (
                (px - x.start) / (x.end - x.start),
                (py - y.start) / (y.end - y.start),
            );
            let (left, lower) = (fx < w, fy < h);
            if (left || fx > 1.0 - w) && (lower || fy > 1.0 - h) {
                crowd[usize::from(lower) * 2 + usize::from(left)] += 1;
            }
        }
    }
    let quietest = (0..4).min_by_key(|&i| crowd[i]).unwrap_or(0);
    use SeriesLabelPosition::{LowerLeft, LowerRight, UpperLeft, UpperRight};
    [UpperRight, UpperLeft, LowerRight, LowerLeft][quietest].clone()
}

impl Series {
    /// The points the series' line joins.
    fn path(&self) -> Vec<(f64, f64)> {
        match self {
            Series::Line { points, .. } | Series::Theory { points, .. } => points.clone(),
            Series::Measured { points, .. } => points.iter().map(|(x, e)| (*x, e.mean)).collect(),
        }
    }

    /// Whether it is in the legend.
    fn labelled(&self) -> bool {
        match self {
            Series::Line { label, .. } | Series::Theory { label, .. } => label.is_some(),
            Series::Measured { .. } => true,
        }
    }
}

/// Measured means joined by a line, each with its 95% interval as a vertical bar, labelled.
fn measured<'a, 'b: 'a>(
    chart: &mut Chart<'a, 'b>,
    points: &[(f64, Estimate)],
    colour: RGBColor,
    label: String,
) -> DrawResult {
    let points: Vec<_> = points
        .iter()
        .filter(|(x, e)| x.is_finite() && e.mean.is_finite() && e.ci95.is_finite())
        .collect();
    let (y_lo, y_hi) = (chart.y_range().start, chart.y_range().end);
    let style = colour.stroke_width(2);
    chart
        .draw_series(LineSeries::new(
            points.iter().map(|(x, e)| (*x, e.mean)),
            style,
        ))?
        .label(label)
        .legend(move |(x, y)| {
            EmptyElement::at((x, y))
                + PathElement::new([(0, 0), (20, 0)], style)
                + Circle::new((10, 0), 4, colour.filled())
        });
    chart.draw_series(points.iter().map(|(x, e)| {
        let (lo, hi) = ((e.mean - e.ci95).max(y_lo), (e.mean + e.ci95).min(y_hi));
        ErrorBar::new_vertical(*x, lo, e.mean, hi, colour.stroke_width(1), 10)
    }))?;
    chart.draw_series(
        points
            .iter()
            .map(|(x, e)| Circle::new((*x, e.mean), 4, colour.filled())),
    )?;
    Ok(())
}

/// The points with both coordinates finite.
fn finite(points: impl Iterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    points
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect()
}

/// The range the finite values span, padded by 5% each side (by 1, or 10% of the value, when
/// they are one value; 0..1 when there are none).
fn span(values: impl IntoIterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return 0.0..1.0;
    }
    let pad = if hi - lo > f64::EPSILON * hi.abs().max(1.0) {
        (hi - lo) * 0.05
    } else {
        (lo.abs() * 0.1).max(1.0)
    };
    lo - pad..hi + pad
}

fn nothing(what: &str) -> TwinError {
    TwinError::Plot(format!("nothing to plot: {what}"))
}

/// Registers the font text is drawn with, once per process: call it before a long run to learn
/// now, not after it, that no plot could be labelled.
pub fn font() -> Result<(), TwinError> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    let registered = REGISTERED.get_or_init(|| {
        let path = std::env::var_os(FONT_ENV).unwrap_or_else(|| DEFAULT_FONT.into());
        let shown = Path::new(&path).display().to_string();
        let bytes = std::fs::read(&path).map_err(|e| {
            format!(
                "no font to draw text with: reading {shown}: {e} (install the Debian package \
                 fonts-dejavu-core, or set {FONT_ENV} to a .ttf file)"
            )
        })?;
        let bytes: &'static [u8] = Vec::leak(bytes);
        register_font(FONT, FontStyle::Normal, bytes).map_err(|_| {
            format!("{shown} is not a font plotters can read (set {FONT_ENV} to a .ttf file)")
        })
    });
    registered.clone().map_err(TwinError::Plot)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Where the test PNGs go: `LILYPAD_TWIN_PLOT_DIR` if set (to keep them), else a temp dir.
    fn out(name: &str, draw: impl FnOnce(&Path) -> Result<(), TwinError>) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = std::env::var_os("LILYPAD_TWIN_PLOT_DIR")
            .map_or(tmp.path().into(), std::path::PathBuf::from);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        draw(&path).unwrap();
        let png = std::fs::read(&path).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name} is not a PNG");
        let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
        assert_eq!((width, height), SIZE, "{name}'s size");
    }

    fn est(mean: f64, ci95: f64) -> Estimate {
        Estimate { mean, ci95, n: 100 }
    }

    #[test]
    fn plot_profit_vs_collateral_writes_a_png() {
        let curves: Vec<ProfitCurve> = [1000u32, 2500]
            .iter()
            .map(|&bps| {
                let p = f64::from(bps) / 10_000.0;
                let theory = |m: f64| (1.0 - p) * 0.95 - p * m;
                let ms = [0.0, 1.0, 2.0, 4.0, 8.0];
                ProfitCurve {
                    check_bps: bps,
                    measured: ms
                        .iter()
                        .map(|&m| (m, est(theory(m) + 0.02, 0.05)))
                        .collect(),
                    theory: ms.iter().map(|&m| (m, theory(m))).collect(),
                }
            })
            .collect();
        out("profit_vs_collateral.png", |path| {
            profit_vs_collateral(path, &curves)
        });
        // A single point still has a range to draw in.
        let one = [ProfitCurve {
            check_bps: 500,
            measured: vec![(2.0, est(0.1, 0.0))],
            theory: vec![],
        }];
        out("profit_one_point.png", |path| {
            profit_vs_collateral(path, &one)
        });
    }

    #[test]
    fn plot_adaptive_q_writes_a_png() {
        let falling = (0..50).map(|r| 0.5 * 0.9f64.powi(r)).collect();
        let rising = (0..40).map(|r| 1.0 - 0.5 * 0.95f64.powi(r)).collect();
        let traces = [
            QTrace {
                label: "collateral 2x, audits 10%".into(),
                q: falling,
            },
            QTrace {
                label: "collateral 0x, audits 10%".into(),
                q: rising,
            },
        ];
        out("adaptive_q.png", |path| adaptive_q(path, &traces));
    }

    #[test]
    fn plot_collusion_writes_a_png() {
        let points: Vec<CollusionPoint> = [(3u8, 2u8), (5, 3)]
            .iter()
            .flat_map(|&(per_case, threshold)| {
                (0..=10).map(move |c| {
                    let share = (f64::from(c) / 10.0).powi(i32::from(threshold));
                    CollusionPoint {
                        per_case,
                        threshold,
                        pool: 10,
                        colluders: c,
                        accepted: est((share + 0.03 * f64::from(c).sin()).clamp(0.0, 1.0), 0.04),
                        profit: est(0.0, 0.0),
                        theory: share,
                    }
                })
            })
            .collect();
        out("collusion.png", |path| collusion(path, &points));
    }

    #[test]
    fn plot_refuses_empty_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.png");
        let said = |r: Result<(), TwinError>| r.unwrap_err().to_string();
        assert!(
            said(profit_vs_collateral(&path, &[])).contains("nothing to plot: no profit curves")
        );
        let blank = [ProfitCurve::default()];
        assert!(said(profit_vs_collateral(&path, &blank)).contains("nothing to plot"));
        assert!(said(adaptive_q(&path, &[])).contains("nothing to plot: no q traces"));
        assert!(said(adaptive_q(&path, &[QTrace::default()])).contains("nothing to plot"));
        assert!(said(collusion(&path, &[])).contains("nothing to plot: no collusion points"));
        assert!(!path.exists());
    }
}
