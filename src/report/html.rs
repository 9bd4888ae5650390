//! A self-contained HTML page builder for the `report` command: sections,
//! paragraphs, tables from plain strings and pictures embedded as base64
//! `data:` URIs, so the one file shows everything offline.
//!
//! ```
//! use floodwatch::report::html::HtmlPage;
//! let mut page = HtmlPage::new("floodwatch report");
//! page.section("Metrics")
//!     .table(&["detector", "ROC-AUC"], &[vec!["autoencoder".into(), "0.99".into()]])
//!     .unwrap();
//! let html = page.finish();
//! assert!(html.contains("<td>autoencoder</td>"));
//! ```

use crate::{Error, Result};
use base64::Engine;
use std::fmt::Write;
use std::path::Path;

/// Page style: readable widths, zebra tables, numbers right-aligned.
const STYLE: &str = "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #bbb;padding:4px 10px}\
th{background:#eee}tr:nth-child(even) td{background:#f7f7f7}td.num{text-align:right;font-variant-numeric:tabular-nums}\
figure{margin:1.5em 0}img{max-width:100%;height:auto;border:1px solid #ddd}figcaption{color:#555;font-size:.9em}";

/// An HTML page under construction; [`HtmlPage::finish`] closes it.
#[derive(Debug, Clone, PartialEq)]
pub struct HtmlPage {
    title: String,
    body: String,
    images: usize,
}

impl HtmlPage {
    /// A page with `title` in the head and as the first heading.
    pub fn new(title: &str) -> HtmlPage {
        HtmlPage {
            title: title.to_string(),
            body: format!("<h1>{}</h1>\n", escape(title)),
            images: 0,
        }
    }

    /// Starts a section with a second-level heading.
    pub fn section(&mut self, heading: &str) -> &mut Self {
        let _ = writeln!(self.body, "<h2>{}</h2>", escape(heading));
        self
    }

    /// A paragraph of plain text (escaped).
    pub fn paragraph(&mut self, text: &str) -> &mut Self {
        let _ = writeln!(self.body, "<p>{}</p>", escape(text));
        self
    }

    /// A preformatted block (escaped), for command lines or JSON.
    pub fn code(&mut self, text: &str) -> &mut Self {
        let _ = writeln!(self.body, "<pre>{}</pre>", escape(text));
        self
    }

    /// A PNG picture with a caption, embedded as a data URI.
    pub fn png(&mut self, caption: &str, bytes: &[u8]) -> &mut Self {
        self.image(caption, "image/png", bytes)
    }

    /// An SVG picture with a caption, embedded as a data URI.
    pub fn svg(&mut self, caption: &str, bytes: &[u8]) -> &mut Self {
        self.image(caption, "image/svg+xml", bytes)
    }

    fn image(&mut self, caption: &str, mime: &str, bytes: &[u8]) -> &mut Self {
        let data = base64::engine::general_purpose::STANDARD.encode(bytes);
        let caption = escape(caption);
        let _ = writeln!(
            self.body,
            "<figure><img src=\"data:{mime};base64,{data}\" alt=\"{caption}\"><figcaption>{caption}</figcaption></figure>"
        );
        self.images += 1;
        self
    }

    /// A table with a header row; every row must have as many cells as the
    /// header. Cells that parse as numbers are right-aligned.
    pub fn table<S: AsRef<str>>(
        &mut self,
        header: &[S],
        rows: &[Vec<String>],
    ) -> Result<&mut Self> {
        if let Some((i, r)) = rows
            .iter()
            .enumerate()
            .find(|(_, r)| r.len() != header.len())
        {
            return Err(Error::Data(format!(
                "table row {i} has {} cells, the header {}",
                r.len(),
                header.len()
            )));
        }
        self.body.push_str("<table>\n<tr>");
        for h in header {
            let _ = write!(self.body, "<th>{}</th>", escape(h.as_ref()));
        }
        self.body.push_str("</tr>\n");
        for r in rows {
            self.body.push_str("<tr>");
            for cell in r {
                let class = if cell.trim().parse::<f64>().is_ok() {
                    " class=\"num\""
                } else {
                    ""
                };
                let _ = write!(self.body, "<td{class}>{}</td>", escape(cell));
            }
            self.body.push_str("</tr>\n");
        }
        self.body.push_str("</table>\n");
        Ok(self)
    }

    /// An inline script written by floodwatch itself (never from data);
    /// refused when it would close its own element early.
    pub fn script(&mut self, js: &str) -> Result<&mut Self> {
        if js.to_ascii_lowercase().contains("</script") {
            return Err(Error::Data(
                "an inline script cannot contain </script".into(),
            ));
        }
        let _ = writeln!(self.body, "<script>{js}</script>");
        Ok(self)
    }

    /// Number of pictures embedded so far.
    pub fn images(&self) -> usize {
        self.images
    }

    /// The complete document.
    pub fn finish(&self) -> String {
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{}</body>\n</html>\n",
            escape(&self.title),
            self.body
        )
    }

    /// Writes the complete document to `path`.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = self.finish();
        crate::util::write_atomically(path, |mut f| {
            std::io::Write::write_all(&mut f, text.as_bytes())
        })
    }
}

/// Escapes text for element content and double-quoted attributes.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_has_sections_tables_and_escaped_text() {
        let mut page = HtmlPage::new("a < b");
        page.section("Data")
            .paragraph("x & \"y\"")
            .code("{\"k\": 1}");
        page.table(
            &["class", "rows"],
            &[vec!["DoS <slowloris>".into(), "5796".into()]],
        )
        .unwrap();
        let html = page.finish();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<title>a &lt; b</title>"));
        assert!(html.contains("<p>x &amp; &quot;y&quot;</p>"));
        assert!(html.contains("<td>DoS &lt;slowloris&gt;</td><td class=\"num\">5796</td>"));
        assert!(html.trim_end().ends_with("</html>"));
    }

    #[test]
    fn images_are_base64_data_uris() {
        let mut page = HtmlPage::new("t");
        page.png("loss", &[0x89, b'P', b'N', b'G'])
            .svg("roc", b"<svg/>");
        let html = page.finish();
        assert_eq!(page.images(), 2);
        assert!(html.contains("src=\"data:image/png;base64,iVBORw==\""));
        assert!(html.contains("src=\"data:image/svg+xml;base64,PHN2Zy8+\""));
        assert!(html.contains("<figcaption>loss</figcaption>"));
    }

    #[test]
    fn scripts_are_inlined_and_cannot_close_early() {
        let mut page = HtmlPage::new("t");
        page.script("document.body.dataset.ok='1';").unwrap();
        assert!(page
            .finish()
            .contains("<script>document.body.dataset.ok='1';</script>"));
        assert!(page.script("x='</SCRIPT>'").is_err());
    }

    #[test]
    fn ragged_tables_are_rejected() {
        let mut page = HtmlPage::new("t");
        let e = page.table(&["a", "b"], &[vec!["1".into()]]).unwrap_err();
        assert_eq!(e.to_string(), "table row 0 has 1 cells, the header 2");
    }

    #[test]
    fn writes_the_file_and_names_a_bad_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.html");
        HtmlPage::new("t").write(&path).unwrap();
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains("<h1>t</h1>"));
        let bad = dir.path().join("missing/r.html");
        assert!(HtmlPage::new("t")
            .write(&bad)
            .unwrap_err()
            .to_string()
            .contains("missing"));
    }
}
