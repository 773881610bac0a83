//! What Stripe keeps: its fees, as the emulator charges them.

/// Stripe's standard card rate in Canada, 2.9% + C$0.30 per successful
/// domestic card charge (Stripe's Canadian pricing page; the emulator uses
/// it for every currency and method).
pub(crate) fn card_fee(amount: i64) -> i64 {
    (amount * 29 + 500) / 1000 + 30
}

/// Stripe's fee on a dispute (C$15 in Canada), withdrawn with the disputed amount.
pub(crate) const DISPUTE_FEE: i64 = 1500;

#[cfg(test)]
mod tests {
    use super::*;

    /// 2.9% + 30¢, rounded to the cent.
    #[test]
    fn the_card_fee_is_stripes_canadian_rate() {
        assert_eq!(card_fee(4500), 161); // 130.5 → 131 (half up) + 30
        assert_eq!(card_fee(10000), 320);
        assert_eq!(card_fee(50), 31);
    }
}
