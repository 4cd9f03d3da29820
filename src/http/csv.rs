//! RFC 4180 output for exports: CRLF line ends, quoting as needed, and text cells that a
//! spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab or CR first) prefixed with `'`.

use std::borrow::Cow;

use axum::{
    body::Body,
    http::header,
    response::{IntoResponse, Response},
};
use futures_util::{Stream, StreamExt};

/// One cell: text from users or banks (neutralised), or a value we formatted ourselves, such as
/// a number or a date (written as it is, so spreadsheets read `-12.50` as a number).
pub enum Cell<'a> {
    Text(&'a str),
    Plain(&'a str),
}

/// Rows written into a buffer that is taken in chunks, for streaming.
pub struct CsvWriter {
    inner: csv::Writer<Vec<u8>>,
}

impl Default for CsvWriter {
    fn default() -> Self {
        Self { inner: writer() }
    }
}

fn writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(Vec::new())
}

impl CsvWriter {
    pub fn row<'a>(&mut self, cells: impl IntoIterator<Item = Cell<'a>>) {
        let record = cells.into_iter().map(|cell| match cell {
            Cell::Text(text) => neutralise(text),
            Cell::Plain(text) => Cow::Borrowed(text),
        });
        // Writing to a Vec cannot fail.
        let _ = self.inner.write_record(record.map(|c| c.into_owned()));
    }

    /// A row of text cells.
    pub fn text_row(&mut self, cells: &[&str]) {
        self.row(cells.iter().map(|c| Cell::Text(c)));
    }

    /// Everything written so far, leaving the writer empty.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.inner, writer()).into_inner().unwrap_or_default()
    }
}

/// A CSV file streamed to the client as `filename`, chunk by chunk as `chunks` yields them. An
/// `Err` chunk cuts the response off without its final chunk, so a client sees a failed
/// download, never a silently short file.
///
/// The stream is fused: a body may be polled again after it has ended (the gzip encoder does,
/// to flush), and streams such as `stream::unfold` panic when that happens.
pub fn download<S>(filename: &str, chunks: S) -> Response
where
    S: Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static,
{
    let disposition = format!("attachment; filename=\"{filename}\"");
    (
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (header::CONTENT_DISPOSITION, disposition)],
        Body::from_stream(chunks.fuse()),
    )
        .into_response()
}

fn neutralise(text: &str) -> Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// One row of text cells as a string.
pub fn text_row(cells: &[&str]) -> String {
    let mut writer = CsvWriter::default();
    writer.text_row(cells);
    String::from_utf8(writer.take()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_download_may_be_polled_after_it_ended() {
        use http_body_util::BodyExt;
        let chunks = futures_util::stream::unfold(0, |n| async move { (n < 2).then(|| (Ok(vec![b'a' + n]), n + 1)) });
        let mut body = download("x.csv", chunks).into_body();
        let mut seen = Vec::new();
        while let Some(frame) = body.frame().await {
            seen.extend_from_slice(&frame.unwrap().into_data().unwrap());
        }
        assert_eq!(seen, b"ab");
        assert!(body.frame().await.is_none(), "polled again after the end, as the gzip encoder does");
    }

    #[test]
    fn rows_quote_and_neutralise_formulas_in_text_only() {
        assert_eq!(text_row(&["a", "b,c", "say \"hi\""]), "a,\"b,c\",\"say \"\"hi\"\"\"\r\n");
        assert_eq!(text_row(&["=SUM(A1)", "-5", "@x", "ok"]), "'=SUM(A1),'-5,'@x,ok\r\n");
        let mut writer = CsvWriter::default();
        writer.row([Cell::Plain("-12.50"), Cell::Text("+44 20 7946 0000"), Cell::Text("\tx")]);
        assert_eq!(String::from_utf8(writer.take()).unwrap(), "-12.50,'+44 20 7946 0000,'\tx\r\n");
        assert!(writer.take().is_empty());
    }
}
