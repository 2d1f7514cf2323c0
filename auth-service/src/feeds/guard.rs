//! The checks a parsed download passes before it may replace a live list: pure, so a unit test
//! states each rule. A refused download leaves the list as it was: an outage of the feed's
//! publisher, or a truncated file, must never wipe the protection the list gives.

use super::settings::FeedSettings;

/// Why a parsed download is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// No network at all.
    #[error("the download holds no network")]
    Empty,
    /// More networks than `max_networks`.
    #[error("the download holds {got} networks, more than max_networks = {max}")]
    TooLarge {
        /// Networks in the download.
        got: usize,
        /// The cap.
        max: usize,
    },
    /// It would shrink the live list by more than `max_shrink`.
    #[error("the download holds {got} networks, the list {live}: a shrink of {percent}% is more than max_shrink = {max_shrink} allows (at least {min} needed)")]
    Shrink {
        /// Networks in the download.
        got: usize,
        /// Networks in the live list.
        live: u64,
        /// How much it would shrink, in percent.
        percent: u64,
        /// The configured fraction.
        max_shrink: f64,
        /// The fewest networks accepted.
        min: u64,
    },
}

/// Checks `got` networks against the feed's limits and the live list's `live` count (`None`
/// before the first load, when there is nothing to shrink).
pub fn check(feed: &FeedSettings, got: usize, live: Option<u64>) -> Result<(), Refusal> {
    if got == 0 {
        return Err(Refusal::Empty);
    }
    if got > feed.max_networks {
        return Err(Refusal::TooLarge {
            got,
            max: feed.max_networks,
        });
    }
    if let Some(live) = live.filter(|&l| l > 0) {
        // The fewest networks accepted, rounded up so that max_shrink = 0 accepts no loss at all.
        let min = ((live as f64) * (1.0 - feed.max_shrink)).ceil() as u64;
        if (got as u64) < min {
            let percent = (live - got as u64) * 100 / live;
            return Err(Refusal::Shrink {
                got,
                live,
                percent,
                max_shrink: feed.max_shrink,
                min,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feeds::parse::Format;

    fn feed(max_shrink: f64, max_networks: usize) -> FeedSettings {
        FeedSettings {
            name: "drop".into(),
            url: "http://x/".into(),
            format: Format::Cidr,
            list: "drop".into(),
            interval: std::time::Duration::from_secs(60),
            max_shrink,
            value: ipcheck_core::Reasons::empty(),
            timeout: std::time::Duration::from_secs(5),
            max_networks,
            max_bytes: 1000,
        }
    }

    #[test]
    fn empty_is_refused_even_on_first_load() {
        assert_eq!(check(&feed(1.0, 10), 0, None), Err(Refusal::Empty));
    }

    #[test]
    fn size_cap() {
        assert!(check(&feed(0.5, 10), 10, None).is_ok());
        assert!(matches!(
            check(&feed(0.5, 10), 11, None),
            Err(Refusal::TooLarge { got: 11, max: 10 })
        ));
    }

    #[test]
    fn shrink_guard() {
        let f = feed(0.5, 100);
        assert!(check(&f, 5, Some(10)).is_ok());
        assert!(check(&f, 1, None).is_ok());
        let e = check(&f, 4, Some(10)).unwrap_err();
        assert!(
            matches!(
                e,
                Refusal::Shrink {
                    percent: 60,
                    min: 5,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("max_shrink = 0.5"), "{e}");
        assert!(check(&feed(0.0, 100), 9, Some(10)).is_err());
        assert!(check(&feed(0.0, 100), 10, Some(10)).is_ok());
        assert!(check(&feed(1.0, 100), 1, Some(1000)).is_ok());
        assert!(check(&f, 20, Some(10)).is_ok());
    }
}
