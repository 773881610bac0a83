//! The receipt as a PDF: the document's text, in order, as the receipt's
//! page shows it; a renderer (its own crate, with its fonts) lays it out.

/// What a receipt says, in order, whatever its form (page or PDF).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptDocument {
    /// `fr` or `en`.
    pub lang: &'static str,
    pub title: String,
    pub header: Vec<(String, String)>,
    pub services_caption: &'static str,
    pub columns: [&'static str; 4],
    pub rows: Vec<[String; 4]>,
    pub footer: Vec<(String, String)>,
    /// What the clinic did not provide, as one line (empty when nothing is missing).
    pub missing: String,
    /// The receipt's number, for the file's name and its metadata.
    pub number: String,
}

#[derive(Debug, thiserror::Error)]
#[error("the receipt could not be rendered as a PDF: {0}")]
pub struct PdfError(pub String);

pub trait ReceiptPdf: Send + Sync {
    fn render(&self, doc: &ReceiptDocument) -> Result<Vec<u8>, PdfError>;
}
