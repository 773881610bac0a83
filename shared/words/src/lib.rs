//! One home for words: everything a patient, a clinic's staff or support
//! reads, in one module per language (`fr`, `en`), each one `Words` value
//! with the same fields, so a word missing in one language does not compile.
//! The patient page and receipts (the edge), Checkout's line names (the
//! app), payment methods, the Stripe emulator's page and the reference
//! console (which loads them as JSON: `console_json`) read them here.
//!
//! Not here: what is written for the record rather than read by a person in
//! their language (an action's history reasons, logs, error messages of the
//! API, which stay English with stable codes).

pub mod en;
pub mod fr;

/// A language visitpay speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Fr,
    En,
}

impl Lang {
    /// The language of a locale tag (`fr-CA`, `fr`, `en-CA`…): French for
    /// any French tag, else English.
    pub fn of_tag(tag: &str) -> Lang {
        if tag.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("fr")) {
            Lang::Fr
        } else {
            Lang::En
        }
    }

    pub fn words(self) -> &'static Words {
        match self {
            Lang::Fr => &fr::WORDS,
            Lang::En => &en::WORDS,
        }
    }
}

/// Every word, in one language.
pub struct Words {
    /// `fr` or `en` (HTML `lang`).
    pub lang: &'static str,
    /// January to December, as a date is written.
    pub months: [&'static str; 12],
    pub page: PageWords,
    pub receipt: ReceiptWords,
    pub checkout: CheckoutWords,
    pub payment_method: PaymentMethodWords,
    pub messages: MessageWords,
    pub unsubscribe: UnsubscribeWords,
    pub emulator: EmulatorWords,
    /// The reference console's words (flat keys, `{name}` placeholders).
    pub console: &'static [(&'static str, &'static str)],
    /// Action statuses as staff read them in the console.
    pub console_status: &'static [(&'static str, &'static str)],
    /// Invoice statuses as staff read them in the console.
    pub console_invoice_status: &'static [(&'static str, &'static str)],
}

/// The patient's page behind their link.
pub struct PageWords {
    pub other_lang: &'static str,
    pub language: &'static str,
    pub switch: &'static str,
    pub title: &'static str,
    pub owed: &'static str,
    pub total: &'static str,
    pub pay: &'static str,
    pub secure: &'static str,
    pub to_pay: &'static str,
    pub confirming: &'static str,
    pub confirming_detail: &'static str,
    pub processing: &'static str,
    pub processing_detail: &'static str,
    pub paid: &'static str,
    pub paid_on: &'static str,
    pub refunded: &'static str,
    pub refunded_detail: &'static str,
    pub refunded_amount: &'static str,
    pub failed: &'static str,
    pub failed_detail: &'static str,
    pub cancelled: &'static str,
    pub expired: &'static str,
    pub contact_clinic: &'static str,
    pub not_paid: &'static str,
    pub refresh: &'static str,
    pub link_not_found: &'static str,
    pub open_your_link: &'static str,
    pub open_your_link_detail: &'static str,
    pub unavailable: &'static str,
    pub unavailable_detail: &'static str,
    pub receipt: &'static str,
    pub no_receipt: &'static str,
    pub no_receipt_detail: &'static str,
}

/// The receipt, as a page and as a PDF.
pub struct ReceiptWords {
    pub receipt: &'static str,
    pub receipt_no: &'static str,
    pub issued_by: &'static str,
    pub address: &'static str,
    pub phone: &'static str,
    pub patient: &'static str,
    pub services: &'static str,
    pub column_service: &'static str,
    pub column_date: &'static str,
    pub column_provider: &'static str,
    pub column_amount: &'static str,
    pub registration_no: &'static str,
    pub total_paid: &'static str,
    pub paid_on: &'static str,
    pub payment_reference: &'static str,
    pub payment_method: &'static str,
    pub not_yet_reported: &'static str,
    pub refund: &'static str,
    pub refund_completed: &'static str,
    pub refund_in_progress: &'static str,
    pub net_paid: &'static str,
    pub not_provided: &'static str,
    pub not_provided_by_clinic: &'static str,
    pub download_pdf: &'static str,
    /// What is missing, as the last line lists it.
    pub missing_legal_name: &'static str,
    pub missing_address: &'static str,
    pub missing_phone: &'static str,
    pub missing_patient_name: &'static str,
    pub missing_provider_name: &'static str,
    pub missing_profession: &'static str,
    pub missing_registration_number: &'static str,
    pub missing_service_date: &'static str,
}

/// What Stripe's Checkout page shows for a line.
pub struct CheckoutWords {
    /// The generic line: `{invoice}` is the invoice's id.
    pub generic_line: &'static str,
}

impl CheckoutWords {
    pub fn generic_line(&self, invoice: &str) -> String {
        self.generic_line.replace("{invoice}", invoice)
    }
}

/// How a patient paid, as a receipt says it.
pub struct PaymentMethodWords {
    pub card: &'static str,
    pub pre_authorized_debit: &'static str,
}

/// What the patient receives by email and text: the clinic's name, the
/// amount, the link, and nothing of health (no service, no description).
/// `{clinic}`, `{amount}`, `{link}`, `{until}`, `{unsubscribe}` are filled in.
pub struct MessageWords {
    pub link_subject: &'static str,
    pub link_email: &'static str,
    pub link_sms: &'static str,
    pub reminder_subject: &'static str,
    pub reminder_email: &'static str,
    pub reminder_sms: &'static str,
    pub receipt_subject: &'static str,
    pub receipt_email: &'static str,
    /// The last lines of every email: how to stop them.
    pub email_footer: &'static str,
    /// The receipt PDF's file name, before its number.
    pub receipt_file: &'static str,
}

/// The page an email's unsubscribe link opens.
pub struct UnsubscribeWords {
    pub title: &'static str,
    pub question: &'static str,
    pub button: &'static str,
    pub done: &'static str,
    pub not_found: &'static str,
}

/// Fills `{name}` placeholders.
pub fn fill(text: &str, vars: &[(&str, &str)]) -> String {
    vars.iter().fold(text.to_owned(), |out, (name, value)| out.replace(&format!("{{{name}}}"), value))
}

/// The Stripe emulator's Checkout page (test mode).
pub struct EmulatorWords {
    pub badge: &'static str,
    pub title: &'static str,
    pub pay: &'static str,
    pub decline: &'static str,
    pub debit_succeeds: &'static str,
    pub debit_fails: &'static str,
    pub cancel: &'static str,
    pub declined: &'static str,
    pub expired: &'static str,
    pub complete: &'static str,
    pub paid: &'static str,
    pub unpaid: &'static str,
}

/// The console's words as it loads them (`/console/words.json`):
/// `{"en": {key: text, …, "status_words": {…}, "invoice_status_words": {…}}, "fr": …}`.
pub fn console_json() -> String {
    let of = |w: &Words| {
        let map = |pairs: &[(&str, &str)]| -> serde_json::Map<String, serde_json::Value> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v))).collect()
        };
        let mut all = map(w.console);
        all.insert("status_words".into(), map(w.console_status).into());
        all.insert("invoice_status_words".into(), map(w.console_invoice_status).into());
        serde_json::Value::Object(all)
    };
    serde_json::json!({ "en": of(&en::WORDS), "fr": of(&fr::WORDS) }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys<'a>(pairs: &[(&'a str, &str)]) -> Vec<&'a str> {
        let mut keys: Vec<&str> = pairs.iter().map(|(k, _)| *k).collect();
        keys.sort_unstable();
        keys
    }

    /// The struct makes every Rust word exist in both languages; the
    /// console's, which are lists, are checked here: the same keys, each
    /// once, none empty.
    #[test]
    fn the_console_says_everything_in_both_languages() {
        for (fr, en) in [
            (fr::WORDS.console, en::WORDS.console),
            (fr::WORDS.console_status, en::WORDS.console_status),
            (fr::WORDS.console_invoice_status, en::WORDS.console_invoice_status),
        ] {
            assert_eq!(keys(fr), keys(en));
            let mut unique = keys(fr);
            unique.dedup();
            assert_eq!(unique.len(), fr.len(), "a key given twice");
            assert!(fr.iter().chain(en).all(|(_, v)| !v.trim().is_empty()));
        }
        let json: serde_json::Value = serde_json::from_str(&console_json()).unwrap();
        assert_eq!(
            json["fr"]["status_words"]["paid"],
            fr::WORDS.console_status.iter().find(|(k, _)| *k == "paid").unwrap().1
        );
    }

    #[test]
    fn languages_come_from_locale_tags() {
        assert_eq!(Lang::of_tag("fr-CA"), Lang::Fr);
        assert_eq!(Lang::of_tag("FR"), Lang::Fr);
        assert_eq!(Lang::of_tag("en-CA"), Lang::En);
        assert_eq!(Lang::of_tag("de"), Lang::En);
        assert_eq!(Lang::of_tag(""), Lang::En);
        assert_eq!(Lang::Fr.words().lang, "fr");
    }

    #[test]
    fn the_generic_line_names_its_invoice() {
        assert_eq!(fr::WORDS.checkout.generic_line("1042"), "Services cliniques — facture 1042");
        assert_eq!(en::WORDS.checkout.generic_line("1042"), "Clinic services — invoice 1042");
    }
}
