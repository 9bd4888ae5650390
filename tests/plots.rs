//! Every picture is drawn, decodes as a PNG of its stated size and is not
//! blank; the SVG variant carries its labels; the HTML page embeds them.
#![cfg(feature = "plot")]

use floodwatch::report::html::HtmlPage;
use floodwatch::report::plot::{
    render, save, ClassBars, Format, Heatmap, LineChart, Picture, Scatter, ScatterPair,
    ScoreHistogram,
};
use floodwatch::report::tsne::Tsne;
use floodwatch::Matrix;
use std::collections::HashSet;

/// A decoded 8-bit RGB image.
struct Rgb {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

fn decode(png_bytes: &[u8]) -> Rgb {
    let decoder = png::Decoder::new(png_bytes);
    let mut reader = decoder.read_info().expect("PNG header");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).expect("PNG data");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    pixels.truncate(info.buffer_size());
    Rgb {
        width: info.width,
        height: info.height,
        pixels,
    }
}

/// Renders `p` as PNG and checks size, colours and ink in the middle. With
/// `FLOODWATCH_KEEP_PLOTS=DIR` the picture is also written there to look at.
fn check_png<P: Picture>(p: &P) -> Vec<u8> {
    let bytes = render(p, Format::Png).expect("render");
    if let Some(dir) = std::env::var_os("FLOODWATCH_KEEP_PLOTS") {
        let name = format!("{}x{}-{}.png", p.size().0, p.size().1, bytes.len());
        std::fs::write(std::path::Path::new(&dir).join(name), &bytes).expect("keep");
    }
    let img = decode(&bytes);
    assert_eq!((img.width, img.height), p.size());
    let colours: HashSet<&[u8]> = img.pixels.chunks(3).collect();
    assert!(colours.len() > 2, "only {} colours", colours.len());
    // The central half of the picture (the plot area) has non-white pixels.
    let (w, h) = (img.width as usize, img.height as usize);
    let inked = (h / 4..3 * h / 4)
        .flat_map(|y| (w / 4..3 * w / 4).map(move |x| (y * w + x) * 3))
        .filter(|&i| img.pixels[i..i + 3] != [255, 255, 255])
        .count();
    assert!(
        inked > 50,
        "central area nearly blank: {inked} inked pixels"
    );
    bytes
}

fn classes() -> Vec<String> {
    ["BENIGN", "DDoS", "PortScan"].map(String::from).to_vec()
}

/// Three clusters (normal and two attacks) in 6-D and their class indices.
fn clusters() -> (Matrix, Vec<usize>) {
    let mut m = Matrix::with_cols(6);
    let mut class = Vec::new();
    for i in 0..150usize {
        let c = i % 3;
        let jitter = ((i * 7919) % 101) as f32 / 101.0;
        let row: Vec<f32> = (0..6)
            .map(|d| c as f32 * 4.0 + jitter + d as f32 * 0.1)
            .collect();
        m.push_row(&row);
        class.push(c);
    }
    (m, class)
}

fn scatter_pair() -> ScatterPair {
    let (x, class) = clusters();
    let raw = Tsne::params().epochs(200).embed(&x).expect("t-SNE");
    let latent = Tsne::params().epochs(200).seed(7).embed(&x).expect("t-SNE");
    let panel = |title: &str, e: floodwatch::report::tsne::Embedding| Scatter {
        title: title.into(),
        class: e.rows.iter().map(|&r| class[r]).collect(),
        points: e.points,
    };
    ScatterPair {
        title: "t-SNE: scaled input vs latent code".into(),
        classes: classes(),
        left: panel("scaled input", raw),
        right: panel("latent code", latent),
    }
}

fn histogram() -> ScoreHistogram {
    let scores = |base: f32, n: usize| {
        (0..n)
            .map(|i| base * (1.0 + (i % 17) as f32 / 10.0))
            .collect()
    };
    ScoreHistogram {
        title: "Reconstruction error by class".into(),
        x_label: "reconstruction error".into(),
        classes: vec![
            ("BENIGN".into(), scores(0.01, 500)),
            ("DDoS".into(), scores(0.5, 200)),
            ("PortScan".into(), scores(0.1, 50)),
        ],
        threshold: Some(0.05),
        bins: 40,
        log10: true,
    }
}

fn roc() -> LineChart {
    LineChart::roc(vec![
        (
            "autoencoder (AUC 0.97)".into(),
            vec![(0.0, 0.0), (0.02, 0.9), (0.2, 0.97), (1.0, 1.0)],
        ),
        (
            "isolation forest (AUC 0.88)".into(),
            vec![(0.0, 0.0), (0.1, 0.7), (0.4, 0.9), (1.0, 1.0)],
        ),
    ])
}

fn heatmap() -> Heatmap {
    let (x, _) = clusters();
    let names: Vec<String> = (0..6).map(|i| format!("Fwd Packet Length {i}")).collect();
    let mut wide = Matrix::with_cols(6);
    for (i, r) in x.iter_rows().enumerate() {
        let mut row = r.to_vec();
        row[5] = ((i * 31) % 7) as f32; // uncorrelated with the rest
        wide.push_row(&row);
    }
    Heatmap::correlation("Feature correlation", &names, &wide).expect("correlation")
}

fn bars() -> ClassBars {
    ClassBars {
        title: "Rows per class".into(),
        counts: vec![
            ("BENIGN".into(), 2_273_097),
            ("DDoS".into(), 128_027),
            ("Heartbleed".into(), 11),
        ],
    }
}

#[test]
fn tsne_pair_is_drawn() {
    check_png(&scatter_pair());
}

#[test]
fn score_histogram_is_drawn() {
    check_png(&histogram());
}

#[test]
fn roc_pr_and_loss_are_drawn() {
    check_png(&roc());
    check_png(&LineChart::pr(vec![(
        "autoencoder".into(),
        vec![(0.0, 1.0), (0.5, 0.95), (1.0, 0.3)],
    )]));
    check_png(&LineChart::loss(
        &[0.9, 0.4, 0.2, 0.15, 0.12],
        Some(&[1.0, 0.5, 0.3, 0.25, 0.24]),
    ));
}

#[test]
fn class_bars_are_drawn() {
    check_png(&bars());
}

#[test]
fn heatmap_is_drawn_with_named_axes() {
    let h = heatmap();
    check_png(&h);
    let svg = String::from_utf8(render(&h, Format::Svg).expect("svg")).expect("utf-8");
    assert!(svg.contains("Fwd Packet Length 3"));
}

#[test]
fn save_writes_png_and_svg_by_extension() {
    let dir = tempfile::tempdir().expect("temp dir");
    let png_path = dir.path().join("roc.png");
    let svg_path = dir.path().join("roc.svg");
    save(&roc(), &png_path).expect("png");
    save(&roc(), &svg_path).expect("svg");
    assert_eq!(decode(&std::fs::read(&png_path).expect("read")).width, 900);
    let svg = std::fs::read_to_string(&svg_path).expect("read");
    assert!(svg.contains("<svg") && svg.contains("isolation forest"));
    assert!(save(&roc(), &dir.path().join("roc.bmp")).is_err());
}

#[test]
fn html_page_embeds_the_pictures() {
    let mut page = HtmlPage::new("floodwatch report");
    page.section("Pictures")
        .png("ROC curves", &check_png(&roc()))
        .png("Rows per class", &check_png(&bars()))
        .svg(
            "Loss",
            &render(&LineChart::loss(&[1.0, 0.5], None), Format::Svg).expect("svg"),
        );
    let html = page.finish();
    assert_eq!(page.images(), 3);
    assert_eq!(
        html.matches("<img src=\"data:image/png;base64,iVBORw0KGgo")
            .count(),
        2
    );
    assert_eq!(html.matches("data:image/svg+xml;base64,").count(), 1);
}
