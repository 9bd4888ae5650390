//! Pictures as PNG or SVG, drawn with plotters from plain data (not from the
//! pipeline's types): the t-SNE scatter pair, score histograms, ROC / PR /
//! loss curves, class bars and a correlation heatmap.
//!
//! Text is set in DejaVu Sans, embedded in the binary (`assets/`, Bitstream
//! Vera licence) and registered with plotters' `ab_glyph` backend, so drawing
//! needs no system font and no fontconfig.
//!
//! Each picture is a struct implementing [`Picture`]; [`render`] turns it into
//! file bytes and [`save`] writes it, choosing the format from the extension.
//!
//! ```
//! use floodwatch::report::plot::{render, Format, LineChart};
//! let roc = LineChart::roc(vec![("detector".into(), vec![(0.0, 0.0), (0.1, 0.9), (1.0, 1.0)])]);
//! let png = render(&roc, Format::Png).unwrap();
//! assert!(png.starts_with(b"\x89PNG"));
//! ```

use crate::{Error, Matrix, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;
use std::path::Path;
use std::sync::OnceLock;

/// The embedded font (DejaVu Sans 2.37, see `assets/DejaVuSans-LICENSE.txt`).
static FONT_TTF: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
/// Family name every text style uses; the embedded font is registered under it.
const FONT: &str = "sans-serif";
/// Heatmaps past this many features have unreadable labels.
pub const MAX_HEATMAP_FEATURES: usize = 64;

/// Result of the drawing code, in the backend's own error type.
pub type DrawResult<DB> =
    std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A file format for pictures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// 8-bit RGB PNG.
    Png,
    /// SVG (text as `<text>` elements).
    Svg,
}

impl Format {
    /// The format of a path by its extension (`png` or `svg`, any case).
    pub fn from_path(path: &Path) -> Result<Format> {
        if crate::util::is_stdout(path) {
            return Ok(Format::Svg);
        }
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        match ext.to_ascii_lowercase().as_str() {
            "png" => Ok(Format::Png),
            "svg" => Ok(Format::Svg),
            _ => Err(Error::Plot(format!(
                "{}: picture file names end in .png or .svg",
                path.display()
            ))),
        }
    }
}

/// A picture drawn from plain data.
pub trait Picture {
    /// Size in pixels, width then height.
    fn size(&self) -> (u32, u32);
    /// Checks the data (lengths agree, values finite, ...) before drawing.
    fn check(&self) -> Result<()>;
    /// Draws onto `root`, already filled white.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

/// Draws `picture` and returns the bytes of a PNG or SVG file.
pub fn render<P: Picture>(picture: &P, format: Format) -> Result<Vec<u8>> {
    picture.check()?;
    register_font()?;
    let (w, h) = picture.size();
    let failed = |e: &dyn std::fmt::Display| Error::Plot(format!("drawing failed: {e}"));
    match format {
        Format::Png => {
            let mut rgb = vec![0u8; w as usize * h as usize * 3];
            {
                let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
                root.fill(&WHITE).map_err(|e| failed(&e))?;
                picture.draw(&root).map_err(|e| failed(&e))?;
                root.present().map_err(|e| failed(&e))?;
            }
            encode_png(&rgb, w, h)
        }
        Format::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
                root.fill(&WHITE).map_err(|e| failed(&e))?;
                picture.draw(&root).map_err(|e| failed(&e))?;
                root.present().map_err(|e| failed(&e))?;
            }
            Ok(svg.into_bytes())
        }
    }
}

/// Draws `picture` into `path`, PNG or SVG by its extension.
pub fn save<P: Picture>(picture: &P, path: &Path) -> Result<()> {
    let bytes = render(picture, Format::from_path(path)?)?;
    crate::util::write_atomically(path, |mut f| std::io::Write::write_all(&mut f, &bytes))
}

fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED
        .get_or_init(|| plotters::style::register_font(FONT, FontStyle::Normal, FONT_TTF).is_ok());
    if ok {
        Ok(())
    } else {
        Err(Error::Plot("the embedded font cannot be parsed".into()))
    }
}

fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let failed = |e: png::EncodingError| Error::Plot(format!("PNG encoding failed: {e}"));
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(failed)?;
    writer.write_image_data(rgb).map_err(failed)?;
    writer.finish().map_err(failed)?;
    Ok(out)
}

// === colours ===

/// Tableau 10 without its green, kept for normal traffic, and its grey,
/// too faint for an attack.
const PALETTE: [RGBColor; 8] = [
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
const NORMAL_GREEN: RGBColor = RGBColor(44, 160, 44);

/// Whether a class name means normal traffic ("BENIGN", "normal", ...).
pub fn is_normal_class(name: &str) -> bool {
    ["benign", "normal"]
        .iter()
        .any(|n| name.trim().eq_ignore_ascii_case(n))
}

/// Colours for `classes`: normal classes green; an attack class gets the
/// palette colour its name hashes to (the next free one when another class
/// of the picture holds it), so a class keeps its colour across pictures.
fn class_colours(classes: &[String]) -> Vec<RGBColor> {
    let mut taken = [false; PALETTE.len()];
    let mut by_name: Vec<usize> = (0..classes.len()).collect();
    by_name.sort_by(|&a, &b| classes[a].cmp(&classes[b]));
    let mut out = vec![NORMAL_GREEN; classes.len()];
    for i in by_name {
        if is_normal_class(&classes[i]) {
            continue;
        }
        let start = name_hash(&classes[i]) % PALETTE.len();
        let k = (0..PALETTE.len())
            .map(|j| (start + j) % PALETTE.len())
            .find(|&k| !taken[k])
            .unwrap_or(start);
        taken[k] = true;
        out[i] = PALETTE[k];
    }
    out
}

/// FNV-1a of a class name, case-insensitive.
fn name_hash(name: &str) -> usize {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(0x100_0000_01b3)
    }) as usize
}

/// What a legend entry is drawn with.
#[derive(Clone, Copy)]
enum Mark {
    /// A filled dot (scatter points, bars).
    Dot(RGBColor),
    /// A dashed line (a threshold).
    Dashed(RGBColor),
}

/// Width of the strip beside a plot that holds its legend.
const LEGEND_WIDTH: u32 = 210;

/// Draws `entries` top-down in `area`, a strip beside the plot, so that the
/// legend never covers data.
fn legend_strip<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(String, Mark)],
) -> DrawResult<DB> {
    for (i, (label, mark)) in entries.iter().enumerate() {
        let y = 70 + 24 * i as i32;
        match *mark {
            Mark::Dot(c) => area.draw(&Circle::new((12, y), 6, c.filled()))?,
            Mark::Dashed(c) => {
                for x in [2, 12] {
                    area.draw(&PathElement::new([(x, y), (x + 7, y)], c.stroke_width(2)))?;
                }
            }
        }
        let text = font(13).pos(Pos::new(HPos::Left, VPos::Center));
        area.draw(&Text::new(label.clone(), (26, y), text))?;
    }
    Ok(())
}

/// Colour of the `i`-th line of a chart (detectors, train/validation).
fn series_colour(i: usize) -> RGBColor {
    [
        NORMAL_GREEN,
        PALETTE[0],
        PALETTE[1],
        PALETTE[2],
        PALETTE[3],
        PALETTE[4],
        PALETTE[5],
    ][i % 7]
}

fn font(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().color(&BLACK)
}

/// A padded `[lo, hi]` span of `values` (never empty).
fn span(values: impl Iterator<Item = f32>) -> (f32, f32) {
    let (lo, hi) = values.fold((f32::MAX, f32::MIN), |(l, h), v| (l.min(v), h.max(v)));
    if lo > hi {
        return (0.0, 1.0);
    }
    let pad = if hi > lo {
        (hi - lo) * 0.05
    } else {
        lo.abs().max(1.0) * 0.05
    };
    (lo - pad, hi + pad)
}

fn check_finite(what: &str, values: impl Iterator<Item = f32>) -> Result<()> {
    match values.enumerate().find(|(_, v)| !v.is_finite()) {
        Some((i, v)) => Err(Error::Plot(format!(
            "{what}: value {i} is not finite ({v})"
        ))),
        None => Ok(()),
    }
}

// === t-SNE pair ===

/// One panel of points, each with an index into the classes of its [`ScatterPair`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scatter {
    /// Panel title ("scaled input", "latent code").
    pub title: String,
    /// The points.
    pub points: Vec<[f32; 2]>,
    /// Class index of each point.
    pub class: Vec<usize>,
}

/// Two scatter panels side by side with one class legend, for a t-SNE of
/// the raw input against one of the latent codes.
#[derive(Debug, Clone, PartialEq)]
pub struct ScatterPair {
    /// Picture title.
    pub title: String,
    /// Class names; normal classes are drawn green and first (underneath).
    pub classes: Vec<String>,
    /// Left panel.
    pub left: Scatter,
    /// Right panel.
    pub right: Scatter,
}

impl Picture for ScatterPair {
    fn size(&self) -> (u32, u32) {
        (1400, 680)
    }

    fn check(&self) -> Result<()> {
        for p in [&self.left, &self.right] {
            if p.points.is_empty() || p.points.len() != p.class.len() {
                return Err(Error::Plot(format!(
                    "{}: {} points but {} class indices",
                    p.title,
                    p.points.len(),
                    p.class.len()
                )));
            }
            if let Some(c) = p.class.iter().find(|&&c| c >= self.classes.len()) {
                return Err(Error::Plot(format!(
                    "{}: class index {c} but {} classes",
                    p.title,
                    self.classes.len()
                )));
            }
            check_finite(&p.title, p.points.iter().flatten().copied())?;
        }
        Ok(())
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let root = root.titled(&self.title, font(26))?;
        let (panels, strip) = root.split_horizontally(root.dim_in_pixel().0 - LEGEND_WIDTH);
        let (l, r) = panels.split_horizontally(panels.dim_in_pixel().0 / 2);
        let colours = class_colours(&self.classes);
        self.panel(&l, &self.left, &colours)?;
        self.panel(&r, &self.right, &colours)?;
        let entries: Vec<(String, Mark)> = (0..self.classes.len())
            .filter_map(|c| {
                let n = self.left.class.iter().filter(|&&k| k == c).count();
                (n > 0).then(|| (format!("{} ({n})", self.classes[c]), Mark::Dot(colours[c])))
            })
            .collect();
        legend_strip(&strip, &entries)
    }
}

impl ScatterPair {
    /// Titles of the panels whose points lie on a line or a point: a
    /// collapsed embedding that shows little.
    pub fn collapsed(&self) -> Vec<&str> {
        [&self.left, &self.right]
            .into_iter()
            .filter(|p| is_collapsed(&p.points))
            .map(|p| p.title.as_str())
            .collect()
    }

    fn panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        p: &Scatter,
        colours: &[RGBColor],
    ) -> DrawResult<DB> {
        let (x0, x1) = span(p.points.iter().map(|q| q[0]));
        let (y0, y1) = span(p.points.iter().map(|q| q[1]));
        let mut chart = ChartBuilder::on(area)
            .caption(&p.title, font(20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .x_desc("t-SNE 1")
            .y_desc("t-SNE 2")
            .label_style(font(13))
            .axis_desc_style(font(15))
            .draw()?;
        // Normal classes first so that attacks stay visible on top.
        let mut order: Vec<usize> = (0..self.classes.len()).collect();
        order.sort_by_key(|&c| !is_normal_class(&self.classes[c]));
        for c in order {
            let n = p.class.iter().filter(|&&k| k == c).count();
            if n == 0 {
                continue;
            }
            let colour = colours[c];
            let pts = p.points.iter().zip(&p.class).filter(|(_, &k)| k == c);
            chart.draw_series(
                pts.map(|(q, _)| Circle::new((q[0], q[1]), 2, colour.mix(0.7).filled())),
            )?;
        }
        Ok(())
    }
}

/// Whether `points` lie on a line: the smaller principal variance is below
/// [`COLLAPSED`] of the larger (or both are zero).
fn is_collapsed(points: &[[f32; 2]]) -> bool {
    let n = points.len().max(1) as f64;
    let mean = |k: usize| points.iter().map(|p| f64::from(p[k])).sum::<f64>() / n;
    let (mx, my) = (mean(0), mean(1));
    let (mut xx, mut yy, mut xy) = (0.0, 0.0, 0.0);
    for p in points {
        let (dx, dy) = (f64::from(p[0]) - mx, f64::from(p[1]) - my);
        (xx, yy, xy) = (xx + dx * dx, yy + dy * dy, xy + dx * dy);
    }
    let half_trace = (xx + yy) / 2.0;
    let root = (((xx - yy) / 2.0).powi(2) + xy * xy).sqrt();
    let (big, small) = (half_trace + root, half_trace - root);
    big <= 0.0 || small <= COLLAPSED * big
}

/// Smallest ratio of principal variances of an embedding that is not flat.
const COLLAPSED: f64 = 1e-3;

// === score histograms ===

/// Histograms of detector scores, one per class, each normalised to its own
/// class size (classes differ by orders of magnitude), with the threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreHistogram {
    /// Picture title.
    pub title: String,
    /// Axis title for the score ("reconstruction error").
    pub x_label: String,
    /// (class name, its scores).
    pub classes: Vec<(String, Vec<f32>)>,
    /// The alerting threshold, drawn as a dashed line.
    pub threshold: Option<f32>,
    /// Number of bins; at least 1.
    pub bins: usize,
    /// Bin `log10(score)` instead of the score (heavy-tailed errors); then
    /// every score and the threshold must be positive.
    pub log10: bool,
}

impl ScoreHistogram {
    fn value(&self, v: f32) -> f32 {
        if self.log10 {
            v.log10()
        } else {
            v
        }
    }
}

impl Picture for ScoreHistogram {
    fn size(&self) -> (u32, u32) {
        (1000, 650)
    }

    fn check(&self) -> Result<()> {
        if self.bins == 0 || self.classes.iter().all(|(_, s)| s.is_empty()) {
            return Err(Error::Plot(format!(
                "{}: needs at least one bin and one score",
                self.title
            )));
        }
        let all = self
            .classes
            .iter()
            .flat_map(|(_, s)| s)
            .chain(&self.threshold);
        for (name, scores) in &self.classes {
            check_finite(name, scores.iter().copied())?;
        }
        if self.log10 {
            if let Some(v) = all.clone().find(|&&v| v <= 0.0) {
                return Err(Error::Plot(format!(
                    "{}: log scale needs positive scores, got {v}",
                    self.title
                )));
            }
        }
        check_finite("threshold", self.threshold.into_iter())
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let values = self
            .classes
            .iter()
            .flat_map(|(_, s)| s)
            .chain(&self.threshold);
        let (lo, hi) = span(values.map(|&v| self.value(v)));
        let width = (hi - lo) / self.bins as f32;
        let hists: Vec<Vec<f32>> = self
            .classes
            .iter()
            .map(|(_, s)| {
                let mut h = vec![0.0f32; self.bins];
                for &v in s {
                    let b = ((self.value(v) - lo) / width) as usize;
                    h[b.min(self.bins - 1)] += 1.0 / s.len() as f32;
                }
                h
            })
            .collect();
        let top = hists.iter().flatten().fold(0.0f32, |m, &v| m.max(v)) * 1.1;
        let x_desc = if self.log10 {
            format!("log10({})", self.x_label)
        } else {
            self.x_label.clone()
        };
        let (plot, strip) = root.split_horizontally(root.dim_in_pixel().0 - LEGEND_WIDTH);
        let mut chart = ChartBuilder::on(&plot)
            .caption(&self.title, font(24))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(65)
            .build_cartesian_2d(lo..hi, 0f32..top.max(1e-6))?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc("fraction of the class")
            .label_style(font(13))
            .axis_desc_style(font(16))
            .draw()?;
        let names: Vec<String> = self.classes.iter().map(|(n, _)| n.clone()).collect();
        let mut entries = Vec::new();
        for ((h, colour), (name, s)) in hists.iter().zip(class_colours(&names)).zip(&self.classes) {
            // Only the span of bins the class occupies, so empty stretches
            // do not paint over the axis.
            let first = h.iter().position(|&y| y > 0.0).unwrap_or(0);
            let last = h.iter().rposition(|&y| y > 0.0).unwrap_or(0);
            let steps = h
                .iter()
                .enumerate()
                .skip(first)
                .take(last + 1 - first)
                .flat_map(|(b, &y)| {
                    let x = lo + b as f32 * width;
                    [(x, y), (x + width, y)]
                });
            chart.draw_series(
                AreaSeries::new(steps, 0.0, colour.mix(0.2)).border_style(colour.stroke_width(2)),
            )?;
            entries.push((format!("{name} ({})", s.len()), Mark::Dot(colour)));
        }
        if let Some(t) = self.threshold {
            let x = self.value(t);
            let line = [(x, 0.0), (x, top)];
            chart.draw_series(DashedLineSeries::new(line, 8, 5, BLACK.stroke_width(2)))?;
            entries.push((format!("threshold {t:.4}"), Mark::Dashed(BLACK)));
        }
        legend_strip(&strip, &entries)
    }
}

// === line charts: ROC, PR, loss ===

/// Axis ranges of a [`LineChart`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axes {
    /// `[0, 1] x [0, 1]` with the chance diagonal (ROC).
    UnitDiagonal,
    /// ROC with the false-positive rate on a log scale from [`MIN_LOG_FPR`]
    /// to 1, where operators choose their thresholds.
    LogFpr,
    /// `[0, 1] x [0, 1]` (precision-recall).
    Unit,
    /// Fitted to the data.
    Fit,
}

/// Left end of a log false-positive-rate axis (rates below it are drawn at it).
pub const MIN_LOG_FPR: f32 = 1e-4;

/// Several named lines on one chart: ROC or PR curves of several detectors,
/// training and validation loss per epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// Picture title.
    pub title: String,
    /// Horizontal axis title.
    pub x_label: String,
    /// Vertical axis title.
    pub y_label: String,
    /// (legend label, points in drawing order).
    pub series: Vec<(String, Vec<(f32, f32)>)>,
    /// Axis ranges.
    pub axes: Axes,
    /// Where the legend goes.
    pub legend: Corner,
}

/// A corner of the plot area, for the legend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corner {
    /// Top left.
    UpperLeft,
    /// Top right.
    UpperRight,
    /// Bottom left.
    LowerLeft,
    /// Bottom right.
    LowerRight,
}

impl Corner {
    fn position(self) -> SeriesLabelPosition {
        match self {
            Corner::UpperLeft => SeriesLabelPosition::UpperLeft,
            Corner::UpperRight => SeriesLabelPosition::UpperRight,
            Corner::LowerLeft => SeriesLabelPosition::LowerLeft,
            Corner::LowerRight => SeriesLabelPosition::LowerRight,
        }
    }
}

impl LineChart {
    /// ROC curves: (false-positive rate, true-positive rate) per detector.
    pub fn roc(series: Vec<(String, Vec<(f32, f32)>)>) -> LineChart {
        LineChart {
            title: "ROC curves".into(),
            x_label: "false-positive rate".into(),
            y_label: "true-positive rate (detection rate)".into(),
            series,
            axes: Axes::UnitDiagonal,
            legend: Corner::LowerRight,
        }
    }

    /// The same chart with the false-positive rate on a log scale.
    pub fn log_fpr(mut self) -> LineChart {
        self.axes = Axes::LogFpr;
        self.x_label = "false-positive rate (log scale)".into();
        self
    }

    /// Precision-recall curves: (recall, precision) per detector.
    pub fn pr(series: Vec<(String, Vec<(f32, f32)>)>) -> LineChart {
        LineChart {
            title: "Precision-recall curves".into(),
            x_label: "recall".into(),
            y_label: "precision".into(),
            series,
            axes: Axes::Unit,
            legend: Corner::LowerLeft,
        }
    }

    /// Training (and validation) loss per epoch, epochs counted from 1.
    pub fn loss(train: &[f32], validation: Option<&[f32]>) -> LineChart {
        let per_epoch = |v: &[f32]| {
            v.iter()
                .enumerate()
                .map(|(i, &l)| ((i + 1) as f32, l))
                .collect()
        };
        let mut series = vec![("training loss".to_string(), per_epoch(train))];
        if let Some(v) = validation {
            series.push(("validation loss".to_string(), per_epoch(v)));
        }
        LineChart {
            title: "Training loss per epoch".into(),
            x_label: "epoch".into(),
            y_label: "loss (mean squared error)".into(),
            series,
            axes: Axes::Fit,
            legend: Corner::UpperRight,
        }
    }
}

impl Picture for LineChart {
    fn size(&self) -> (u32, u32) {
        (900, 700)
    }

    fn check(&self) -> Result<()> {
        if self.series.iter().all(|(_, s)| s.is_empty()) {
            return Err(Error::Plot(format!("{}: no points", self.title)));
        }
        for (name, s) in &self.series {
            check_finite(name, s.iter().flat_map(|p| [p.0, p.1]))?;
        }
        Ok(())
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let points = || self.series.iter().flat_map(|(_, s)| s);
        match self.axes {
            Axes::Fit => {
                let ((x0, x1), (y0, y1)) =
                    (span(points().map(|p| p.0)), span(points().map(|p| p.1)));
                self.draw_on(root, x0..x1, y0..y1)
            }
            Axes::LogFpr => self.draw_on(root, (MIN_LOG_FPR..1.0f32).log_scale(), 0.0..1.02),
            Axes::Unit | Axes::UnitDiagonal => self.draw_on(root, 0.0..1.0f32, 0.0..1.02),
        }
    }
}

impl LineChart {
    fn draw_on<DB, X>(
        &self,
        root: &DrawingArea<DB, Shift>,
        x: X,
        y: std::ops::Range<f32>,
    ) -> DrawResult<DB>
    where
        DB: DrawingBackend,
        X: plotters::coord::ranged1d::AsRangedCoord<Value = f32>,
        X::CoordDescType: plotters::coord::ranged1d::ValueFormatter<f32>,
    {
        let log = self.axes == Axes::LogFpr;
        let fix = move |(x, y): (f32, f32)| (if log { x.max(MIN_LOG_FPR) } else { x }, y);
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, font(24))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(x, y)?;
        let epochs = self.series.iter().map(|(_, s)| s.len()).max().unwrap_or(1);
        let whole = |v: &f32| format!("{v:.0}");
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .label_style(font(13))
            .axis_desc_style(font(16));
        if self.axes == Axes::Fit {
            // Epochs are whole numbers.
            mesh.x_labels(epochs.clamp(2, 10)).x_label_formatter(&whole);
        }
        mesh.draw()?;
        if matches!(self.axes, Axes::UnitDiagonal | Axes::LogFpr) {
            let grey = RGBColor(150, 150, 150);
            let diagonal = (0..=40).map(|i| {
                let v = MIN_LOG_FPR.powf(1.0 - i as f32 / 40.0);
                fix((v, v))
            });
            chart
                .draw_series(DashedLineSeries::new(diagonal, 6, 4, grey.into()))?
                .label("chance")
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], grey));
        }
        for (i, (name, s)) in self.series.iter().enumerate() {
            let colour = series_colour(i);
            let style = colour.stroke_width(2);
            if s.len() == 1 {
                chart.draw_series(s.iter().map(|&p| Circle::new(fix(p), 4, colour.filled())))?;
            }
            chart
                .draw_series(LineSeries::new(s.iter().map(|&p| fix(p)), style))?
                .label(name)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], style));
        }
        chart
            .configure_series_labels()
            .label_font(font(14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(self.legend.position())
            .draw()
    }
}

// === class bars ===

/// Rows per class as horizontal bars on a log scale, counts written at the
/// bar ends (datasets are very imbalanced).
#[derive(Debug, Clone, PartialEq)]
pub struct ClassBars {
    /// Picture title.
    pub title: String,
    /// (class name, rows).
    pub counts: Vec<(String, u64)>,
}

impl Picture for ClassBars {
    fn size(&self) -> (u32, u32) {
        (1000, (150 + 32 * self.counts.len() as u32).clamp(300, 1400))
    }

    fn check(&self) -> Result<()> {
        if self.counts.is_empty() {
            return Err(Error::Plot(format!("{}: no classes", self.title)));
        }
        Ok(())
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let n = self.counts.len();
        let max = self.counts.iter().map(|c| c.1).max().unwrap_or(1).max(1) as f64;
        let longest = self
            .counts
            .iter()
            .map(|c| c.0.chars().count())
            .max()
            .unwrap_or(1);
        let names: Vec<String> = self.counts.iter().map(|c| c.0.clone()).collect();
        let colours = class_colours(&names);
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, font(24))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size((longest as u32 * 8 + 20).min(260))
            // An integer range is inclusive as a segmented axis: n segments.
            .build_cartesian_2d((0.5f64..max * 8.0).log_scale(), (0..n - 1).into_segmented())?;
        // The first class on top.
        let slot = |i: usize| n - 1 - i;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("rows (log scale)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_labels(n)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) if *i < n => names[slot(*i)].clone(),
                _ => String::new(),
            })
            .label_style(font(14))
            .axis_desc_style(font(16))
            .draw()?;
        for (i, ((_, count), colour)) in self.counts.iter().zip(&colours).enumerate() {
            let end = (*count as f64).max(0.5);
            let y = slot(i);
            let mut bar = Rectangle::new(
                [
                    (0.5, SegmentValue::Exact(y)),
                    (end, SegmentValue::Exact(y + 1)),
                ],
                colour.filled(),
            );
            bar.set_margin(3, 3, 0, 0);
            chart.draw_series([bar])?;
            chart.draw_series([Text::new(
                format!(" {count}"),
                (end, SegmentValue::CenterOf(y)),
                font(13).pos(Pos::new(HPos::Left, VPos::Center)),
            )])?;
        }
        Ok(())
    }
}

// === correlation heatmap ===

/// A symmetric matrix of values in [-1, 1] (feature correlations) with named
/// rows and columns; undefined cells (NaN, a constant feature) are grey.
#[derive(Debug, Clone, PartialEq)]
pub struct Heatmap {
    /// Picture title.
    pub title: String,
    /// Feature names, one per row and column; at most [`MAX_HEATMAP_FEATURES`].
    pub names: Vec<String>,
    /// `names.len()²` values, row-major.
    pub values: Vec<f32>,
}

impl Heatmap {
    /// Pearson correlations between the columns of `x`, named by `names`.
    pub fn correlation(title: &str, names: &[String], x: &Matrix) -> Result<Heatmap> {
        let d = x.cols();
        if names.len() != d {
            return Err(Error::Plot(format!(
                "{title}: {} names for {d} columns",
                names.len()
            )));
        }
        let n = x.rows() as f64;
        let mut mean = vec![0.0f64; d];
        for r in x.iter_rows() {
            mean.iter_mut()
                .zip(r)
                .for_each(|(m, &v)| *m += v as f64 / n);
        }
        let mut cov = vec![0.0f64; d * d];
        let mut centred = vec![0.0f64; d];
        for r in x.iter_rows() {
            centred
                .iter_mut()
                .zip(r)
                .zip(&mean)
                .for_each(|((c, &v), m)| *c = v as f64 - m);
            for i in 0..d {
                for j in 0..=i {
                    cov[i * d + j] += centred[i] * centred[j];
                }
            }
        }
        let mut values = vec![0.0f32; d * d];
        for i in 0..d {
            for j in 0..=i {
                let denom = (cov[i * d + i] * cov[j * d + j]).sqrt();
                let r = if denom > 0.0 {
                    (cov[i * d + j] / denom) as f32
                } else {
                    f32::NAN
                };
                values[i * d + j] = r;
                values[j * d + i] = r;
            }
        }
        Ok(Heatmap {
            title: title.into(),
            names: names.to_vec(),
            values,
        })
    }

    /// Width in pixels of the row labels ("12. name").
    fn label_width(&self) -> u32 {
        let longest = self
            .names
            .iter()
            .map(|n| n.chars().count())
            .max()
            .unwrap_or(1) as u32;
        ((longest + 4) * 7 + 20).min(300)
    }
}

/// Blue (-1) through white (0) to red (+1); grey for undefined.
fn diverging(v: f32) -> RGBColor {
    if !v.is_finite() {
        return RGBColor(200, 200, 200);
    }
    let t = v.clamp(-1.0, 1.0);
    let mix = |a: u8, b: u8, f: f32| (a as f32 + (b as f32 - a as f32) * f) as u8;
    if t < 0.0 {
        RGBColor(mix(255, 33, -t), mix(255, 102, -t), mix(255, 172, -t))
    } else {
        RGBColor(mix(255, 178, t), mix(255, 24, t), mix(255, 43, t))
    }
}

impl Picture for Heatmap {
    fn size(&self) -> (u32, u32) {
        let cells = (18 * self.names.len() as u32).max(300);
        (self.label_width() + cells + 150, cells + 130)
    }

    fn check(&self) -> Result<()> {
        let n = self.names.len();
        if n == 0 || n > MAX_HEATMAP_FEATURES || self.values.len() != n * n {
            return Err(Error::Plot(format!(
                "{}: {n} names (1 to {MAX_HEATMAP_FEATURES}) and {} values (should be {})",
                self.title,
                self.values.len(),
                n * n
            )));
        }
        Ok(())
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let n = self.names.len();
        let root = root.titled(&self.title, font(24))?;
        let (w, _) = root.dim_in_pixel();
        let (main, bar) = root.split_horizontally(w - 110);
        let mut chart = ChartBuilder::on(&main)
            .margin(10)
            .x_label_area_size(50)
            .y_label_area_size(self.label_width())
            // An integer range is inclusive as a segmented axis: n segments.
            .build_cartesian_2d((0..n - 1).into_segmented(), (0..n - 1).into_segmented())?;
        // Rotated names overlap the plot in plotters, so columns are numbered
        // and the rows carry number and name; row 0 on top, as in a matrix.
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(n)
            .y_labels(n)
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) if *i < n => format!("{}", i + 1),
                _ => String::new(),
            })
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) if *i < n => {
                    format!("{}. {}", n - i, self.names[n - 1 - i])
                }
                _ => String::new(),
            })
            .x_desc("feature number")
            .label_style(font(12))
            .axis_desc_style(font(14))
            .draw()?;
        chart.draw_series((0..n * n).map(|k| {
            let (i, j) = (k / n, k % n);
            let y = n - 1 - i;
            Rectangle::new(
                [
                    (SegmentValue::Exact(j), SegmentValue::Exact(y)),
                    (SegmentValue::Exact(j + 1), SegmentValue::Exact(y + 1)),
                ],
                diverging(self.values[k]).filled(),
            )
        }))?;
        colour_bar(&bar, 50)
    }
}

/// The heatmap's colour key, from -1 to +1.
fn colour_bar<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, bottom: u32) -> DrawResult<DB> {
    let mut chart = ChartBuilder::on(area)
        .margin_top(10)
        .margin_bottom(bottom + 10)
        .margin_right(10)
        .y_label_area_size(45)
        .caption("r", font(16))
        .build_cartesian_2d(0f32..1.0, -1f32..1.0)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(5)
        .label_style(font(12))
        .draw()?;
    chart.draw_series((0..100).map(|s| {
        let v = -1.0 + s as f32 * 0.02;
        Rectangle::new([(0.0, v), (1.0, v + 0.02)], diverging(v + 0.01).filled())
    }))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_follow_the_extension() {
        assert_eq!(
            Format::from_path(Path::new("a/b.PNG")).unwrap(),
            Format::Png
        );
        assert_eq!(Format::from_path(Path::new("b.svg")).unwrap(), Format::Svg);
        assert!(Format::from_path(Path::new("b.jpg")).is_err());
        assert!(Format::from_path(Path::new("b")).is_err());
    }

    #[test]
    fn normal_classes_are_green_and_attacks_differ() {
        let names: Vec<String> = ["BENIGN", "DDoS", "PortScan"].map(String::from).to_vec();
        let c = class_colours(&names);
        assert_eq!(c[0], NORMAL_GREEN);
        assert_ne!(c[1], c[2]);
        assert!(is_normal_class(" normal "));
        // A class keeps its colour whatever else the picture holds.
        let others = ["normal", "Bot", "DDoS", "Infiltration", "SSH-Patator"].map(String::from);
        let d = class_colours(&others);
        assert_eq!(d[2], c[1]);
        assert_eq!(class_colours(&["DDoS".to_string()])[0], c[1]);
        let all: std::collections::HashSet<_> = d[1..].iter().map(|c| (c.0, c.1, c.2)).collect();
        assert_eq!(all.len(), 4, "attack classes of one picture differ");
    }

    #[test]
    fn flat_embeddings_are_collapsed() {
        let line: Vec<[f32; 2]> = (0..50).map(|i| [i as f32, 2.0 * i as f32 + 1.0]).collect();
        assert!(is_collapsed(&line));
        assert!(is_collapsed(&[[3.0, 3.0]; 10]));
        let blob: Vec<[f32; 2]> = (0..50).map(|i| [(i % 7) as f32, (i / 7) as f32]).collect();
        assert!(!is_collapsed(&blob));
    }

    #[test]
    fn correlation_of_known_columns() {
        let x =
            Matrix::from_vec(4, 3, vec![1., 2., 5., 2., 4., 5., 3., 6., 5., 4., 8., 5.]).unwrap();
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let h = Heatmap::correlation("t", &names, &x).unwrap();
        assert!((h.values[1] - 1.0).abs() < 1e-6);
        assert!(h.values[2].is_nan(), "constant column is undefined");
        assert!(Heatmap::correlation("t", &names[..2], &x).is_err());
    }

    #[test]
    fn bad_plot_data_is_rejected_before_drawing() {
        let hist = ScoreHistogram {
            title: "t".into(),
            x_label: "score".into(),
            classes: vec![("BENIGN".into(), vec![0.5, -1.0])],
            threshold: None,
            bins: 10,
            log10: true,
        };
        assert!(render(&hist, Format::Png)
            .unwrap_err()
            .to_string()
            .contains("positive"));
        let empty = LineChart::roc(vec![]);
        assert!(render(&empty, Format::Png).is_err());
        let nan = LineChart::loss(&[1.0, f32::NAN], None);
        assert!(render(&nan, Format::Svg).is_err());
        let pair = ScatterPair {
            title: "t".into(),
            classes: vec!["BENIGN".into()],
            left: Scatter {
                title: "l".into(),
                points: vec![[0.0, 0.0]],
                class: vec![1],
            },
            right: Scatter::default(),
        };
        assert!(render(&pair, Format::Png).is_err());
        let heat = Heatmap {
            title: "h".into(),
            names: vec!["a".into()],
            values: vec![],
        };
        assert!(render(&heat, Format::Png).is_err());
        assert!(render(
            &ClassBars {
                title: "c".into(),
                counts: vec![]
            },
            Format::Png
        )
        .is_err());
    }

    #[test]
    fn svg_carries_the_text() {
        let chart = LineChart::loss(&[3.0, 2.0, 1.5], Some(&[3.5, 2.5, 2.0]));
        let svg = String::from_utf8(render(&chart, Format::Svg).unwrap()).unwrap();
        assert!(svg.contains("<svg") && svg.contains("validation loss"));
    }
}
