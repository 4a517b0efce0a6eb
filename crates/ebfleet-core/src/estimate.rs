//! What a platform's run is expected to cost before it starts
//! (`ebfleet plan --estimate`): its node time, how long it takes, and the
//! dollars when a price per node-hour is known.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// The nodes' lifetimes, summed (boot and idle time included).
    pub node_hours: f64,
    /// From the first node's launch to the last module's upload.
    pub makespan_hours: f64,
    /// `node_hours` at the platform's price; `None` without one.
    pub usd: Option<f64>,
}

impl Estimate {
    pub fn new(node_seconds: u64, makespan_s: u64, usd_per_node_hour: Option<f64>) -> Self {
        let node_hours = node_seconds as f64 / 3600.0;
        Estimate {
            node_hours,
            makespan_hours: makespan_s as f64 / 3600.0,
            usd: usd_per_node_hour.map(|p| node_hours * p),
        }
    }
}

/// A price file: `{"<platform>" or "<cpu>": USD per node-hour}` (the spot
/// price of the instance types the platform's pool gets, as the operator
/// sees it in the console or `aws ec2 describe-spot-price-history`).
pub type Prices = HashMap<String, f64>;

/// The price of `platform` (its full name, else its CPU part).
pub fn price_of(prices: &Prices, platform: &str, cpu: &str) -> Option<f64> {
    prices
        .get(platform)
        .or_else(|| prices.get(cpu))
        .copied()
        .filter(|p| p.is_finite() && *p >= 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_are_node_hours_at_the_platforms_price() {
        let prices = Prices::from([
            ("epyc-gen-4".to_string(), 0.5),
            ("amzn-2023_graviton-3".to_string(), 0.25),
            ("bad".to_string(), f64::NAN),
        ]);
        let e = Estimate::new(
            7_200,
            5_400,
            price_of(&prices, "amzn-2023_epyc-gen-4", "epyc-gen-4"),
        );
        assert_eq!(
            (e.node_hours, e.makespan_hours, e.usd),
            (2.0, 1.5, Some(1.0))
        );
        assert_eq!(
            price_of(&prices, "amzn-2023_graviton-3", "graviton-3"),
            Some(0.25)
        );
        assert_eq!(price_of(&prices, "x", "bad"), None);
        assert_eq!(Estimate::new(3_600, 0, None).usd, None);
    }
}
