//! `floodwatch report`: one self-contained HTML page about a model on data.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args as ClapArgs;
use floodwatch::model::bundle::Bundle;
use floodwatch::report::explain::{format_top, Explainer};
use floodwatch::report::html::HtmlPage;
use floodwatch::report::plot::Format;
use floodwatch::run::eval::{self, Data, EvalReport};

use super::plot::{Kind, ReadFlags, Scene};

/// Marks every image with `data-loaded="yes"` once decoded (naturalWidth > 0)
/// or `"no"`, and script errors on the body, so a headless browser can
/// check that the page rendered.
const LOAD_CHECK: &str = "window.addEventListener('error',function(e){document.body.setAttribute('data-error',String(e.message))});\
Array.prototype.forEach.call(document.images,function(img){\
var mark=function(){img.setAttribute('data-loaded',img.naturalWidth>0?'yes':'no')};\
if(img.complete){mark()}else{img.addEventListener('load',mark);img.addEventListener('error',mark)}});\
document.body.setAttribute('data-images',String(document.images.length));";

/// Write one HTML page (pictures embedded) with the data summary, training
/// curve, threshold, metrics, pictures and the top explained anomalies.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The model bundle.
    #[arg(long)]
    pub model: PathBuf,
    /// CSV files to report on (labelled for metrics).
    #[arg(long, required = true, num_args = 1..)]
    pub data: Vec<PathBuf>,
    /// The HTML file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Anomalies listed (highest scores first).
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Input columns named per explained anomaly.
    #[arg(long, default_value_t = 5)]
    pub explain: usize,
    /// Rows embedded by t-SNE at most (a seeded sample beyond).
    #[arg(long, default_value_t = 5000)]
    pub tsne_points: usize,
    #[command(flatten)]
    pub read: ReadFlags,
}

/// Builds and writes the page.
pub fn run(args: Args, quiet: bool) -> anyhow::Result<ExitCode> {
    let bundle = Bundle::load(&args.model)?;
    let data = args.read.load(&bundle, &args.data)?;
    let runs = eval::bundle_runs(&bundle, &data);
    let scene = Scene {
        bundle: &bundle,
        data: Some(&data),
        runs: &runs,
        tsne_points: args.tsne_points,
        seed: args.read.seed,
        log_fpr: true,
    };
    let mut page = HtmlPage::new("floodwatch report");
    summary(&mut page, &args, &bundle, &data)?;
    picture(&mut page, &scene, Kind::Classes)?;
    page.section("Training");
    let m = &bundle.meta;
    page.paragraph(&match bundle.autoencoder.networks() {
        1 => format!(
            "{} normal rows trained the autoencoder for {} epochs (batch {}, learning rate {}); {} more were held back for the threshold.",
            m.train_rows, m.epochs, m.batch_size, m.learning_rate, m.holdout_rows
        ),
        n => format!(
            "{n} autoencoder networks were cross-fitted on {n} folds of {} normal rows, {} epochs each (batch {}, learning rate {}); each row's score by the network that left it out set the threshold.",
            m.train_rows + m.holdout_rows, m.epochs, m.batch_size, m.learning_rate
        ),
    });
    match bundle.autoencoder.neighbours() {
        None => page.paragraph("The score is the reconstruction error relative to normal."),
        Some(nb) => page.paragraph(&format!("The score is {nb}.")),
    };
    picture(&mut page, &scene, Kind::Loss)?;
    page.section("Threshold");
    let normal = data.normal_rows();
    let flagged = normal
        .iter()
        .filter(|&&i| runs[0].scores[i] > bundle.threshold)
        .count();
    page.paragraph(&format!(
        "Threshold {:.6} ({}): {} of {} normal rows here are above it.",
        bundle.threshold,
        bundle.threshold_rule,
        flagged,
        normal.len()
    ));
    picture(&mut page, &scene, Kind::Hist)?;
    page.section("Metrics");
    if data.attack.iter().any(|&a| a) && data.attack.iter().any(|&a| !a) {
        let r = EvalReport::new(
            bundle.meta.data.clone(),
            eval::file_names(&args.data),
            (bundle.meta.train_rows, bundle.meta.holdout_rows),
            bundle.threshold_rule,
            &runs,
            &data,
        );
        let (header, rows) = r.table(false);
        page.table(&header, &rows)?;
        page.paragraph("The latent classifier flags rows where an attack class is more probable than normal (as in test and eval); DR = detection rate of that attack class.");
        picture(&mut page, &scene, Kind::Roc)?;
        picture(&mut page, &scene, Kind::Pr)?;
    } else {
        page.paragraph("No metrics: the data needs labelled normal and attack rows.");
    }
    page.section("Pictures");
    picture(&mut page, &scene, Kind::Tsne)?;
    picture(&mut page, &scene, Kind::Corr)?;
    anomalies(&mut page, &args, &bundle, &data, &runs[0].scores)?;
    page.script(LOAD_CHECK)?;
    page.write(&args.out)?;
    if !quiet {
        eprintln!("wrote {} ({} pictures)", args.out.display(), page.images());
    }
    Ok(ExitCode::SUCCESS)
}

fn summary(page: &mut HtmlPage, args: &Args, bundle: &Bundle, data: &Data) -> anyhow::Result<()> {
    page.section("Data");
    page.paragraph(&format!(
        "{} rows read from {}; {} used{}, {} rejected; {} encoded features from {} columns (label column '{}', normal: {}).",
        data.rows_read,
        eval::file_names(&args.data).join(", "),
        data.x.rows(),
        if (data.x.rows() as u64) < data.rows_read.saturating_sub(data.rejections.total()) {
            " (a seeded sample)"
        } else {
            ""
        },
        data.rejections.total(),
        bundle.schema.width(),
        bundle.schema.columns.len(),
        bundle.label_column,
        bundle.normal_labels.join(", ")
    ));
    let rows: Vec<Vec<String>> = data
        .class_counts()
        .into_iter()
        .map(|(c, n)| vec![c, n.to_string()])
        .collect();
    page.table(&["class", "rows"], &rows)?;
    Ok(())
}

fn picture(page: &mut HtmlPage, scene: &Scene, kind: Kind) -> anyhow::Result<()> {
    let png = scene.render(kind, Format::Png)?;
    page.png(kind.describe().1, &png);
    Ok(())
}

fn anomalies(
    page: &mut HtmlPage,
    args: &Args,
    bundle: &Bundle,
    data: &Data,
    scores: &[f32],
) -> anyhow::Result<()> {
    page.section("Top anomalies");
    let mut order: Vec<usize> = (0..scores.len())
        .filter(|&i| scores[i] > bundle.threshold)
        .collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    page.paragraph(&format!(
        "{} rows above the threshold; the {} highest, with the input columns that contribute most to their reconstruction error (share of the error).",
        order.len(),
        order.len().min(args.top)
    ));
    let explainer = Explainer::new(&bundle.schema);
    let rows: Vec<Vec<String>> = order
        .iter()
        .take(args.top)
        .enumerate()
        .map(|(rank, &i)| {
            let top = explainer.explain(&bundle.autoencoder, data.x.row(i), args.explain);
            vec![
                (rank + 1).to_string(),
                data.labels[i].clone(),
                format!("{:.6}", scores[i]),
                format_top(&top).replace(';', "; "),
            ]
        })
        .collect();
    page.table(&["rank", "label", "score", "top features"], &rows)?;
    Ok(())
}
