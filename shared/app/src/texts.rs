//! What a person reads, in their language: the words of a locale and the
//! way dates and amounts are written for them.

use visitpay_domain::{format_amount, ClinicTimeZone, Currency, Locale, Timestamp};
use visitpay_words::{Lang, Words};

/// The words of a locale.
pub fn words(locale: Locale) -> &'static Words {
    match locale {
        Locale::FrCa => Lang::Fr.words(),
        Locale::EnCa => Lang::En.words(),
    }
}

/// A day as a patient reads it, in the clinic's zone: `1 décembre 2026`,
/// `December 1, 2026`.
pub fn date(at: Timestamp, locale: Locale, zone: &ClinicTimeZone) -> String {
    let at = zone.date_of(at);
    let month = words(locale).months[at.month() as usize - 1];
    match locale {
        Locale::FrCa => format!("{}\u{a0}{month}\u{a0}{}", at.day(), at.year()),
        Locale::EnCa => format!("{month} {}, {}", at.day(), at.year()),
    }
}

/// An amount as a patient reads it.
pub fn money(amount: i64, currency: Currency, locale: Locale) -> String {
    format_amount(amount, currency, locale)
}
