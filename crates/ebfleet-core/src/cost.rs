//! What a platform's nodes actually cost: node time per instance type and
//! market, as the scheduler counted it ([`Usage`]), priced per type
//! ([`price`]) with the spot price read when the summary is made for spot
//! nodes and the on-demand price for on-demand ones. A type without a known
//! price leaves the dollars unknown (`None`), never zero.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// How a node was bought.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Market {
    Spot,
    OnDemand,
}

impl Market {
    pub fn as_str(self) -> &'static str {
        match self {
            Market::Spot => "spot",
            Market::OnDemand => "on_demand",
        }
    }
}

/// Node seconds of one instance type bought one way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// `None` when the pool did not say what type the node was.
    pub instance_type: Option<String>,
    pub market: Market,
    pub node_seconds: u64,
}

/// `usage` with the entries of the same type and market added up, sorted
/// by type then market; entries of no time dropped.
pub fn merge(usage: impl IntoIterator<Item = Usage>) -> Vec<Usage> {
    let mut sums: BTreeMap<(Option<String>, Market), u64> = BTreeMap::new();
    for u in usage {
        *sums.entry((u.instance_type, u.market)).or_insert(0) += u.node_seconds;
    }
    sums.into_iter()
        .filter(|(_, s)| *s > 0)
        .map(|((instance_type, market), node_seconds)| Usage {
            instance_type,
            market,
            node_seconds,
        })
        .collect()
}

/// USD per hour of each instance type, per market.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prices {
    pub spot: HashMap<String, f64>,
    pub on_demand: HashMap<String, f64>,
}

impl Prices {
    /// The hourly price of `instance_type` bought on `market`, when known
    /// (a price that is not a finite number of zero or more is unknown).
    pub fn hourly(&self, instance_type: &str, market: Market) -> Option<f64> {
        let table = match market {
            Market::Spot => &self.spot,
            Market::OnDemand => &self.on_demand,
        };
        table
            .get(instance_type)
            .copied()
            .filter(|p| p.is_finite() && *p >= 0.0)
    }
}

/// One line of [`PlatformCost`]: a type and market, its hours and dollars.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeCost {
    pub instance_type: Option<String>,
    pub market: Market,
    pub node_seconds: u64,
    pub instance_hours: f64,
    /// USD per hour used; `None` when unknown.
    pub usd_per_hour: Option<f64>,
    /// `instance_hours × usd_per_hour`; `None` when the price is unknown.
    pub usd: Option<f64>,
}

/// A platform's actual node time and dollars.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlatformCost {
    pub node_seconds: u64,
    pub instance_hours: f64,
    /// The sum of the lines' dollars; `None` when a line with time has no
    /// known price (see `usd_priced` for what is known).
    pub usd: Option<f64>,
    /// The dollars of the lines whose price is known.
    pub usd_priced: f64,
    /// Instance hours without a known price.
    pub unpriced_instance_hours: f64,
    pub types: Vec<TypeCost>,
}

/// Hours of `seconds`.
pub fn hours(seconds: u64) -> f64 {
    seconds as f64 / 3600.0
}

/// `usage` priced at `prices`.
pub fn price(usage: &[Usage], prices: &Prices) -> PlatformCost {
    let mut cost = PlatformCost::default();
    let mut all_known = true;
    for u in merge(usage.iter().cloned()) {
        let h = hours(u.node_seconds);
        let usd_per_hour = u
            .instance_type
            .as_deref()
            .and_then(|t| prices.hourly(t, u.market));
        let usd = usd_per_hour.map(|p| h * p);
        match usd {
            Some(d) => cost.usd_priced += d,
            None => {
                all_known = false;
                cost.unpriced_instance_hours += h;
            }
        }
        cost.node_seconds += u.node_seconds;
        cost.types.push(TypeCost {
            instance_type: u.instance_type,
            market: u.market,
            node_seconds: u.node_seconds,
            instance_hours: h,
            usd_per_hour,
            usd,
        });
    }
    cost.instance_hours = hours(cost.node_seconds);
    cost.usd = all_known.then_some(cost.usd_priced);
    cost
}

/// The instance types of `usage` bought on `market`, sorted, each once.
pub fn types_on(usage: &[Usage], market: Market) -> Vec<String> {
    let mut t: Vec<String> = usage
        .iter()
        .filter(|u| u.market == market && u.node_seconds > 0)
        .filter_map(|u| u.instance_type.clone())
        .collect();
    t.sort();
    t.dedup();
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(t: Option<&str>, market: Market, node_seconds: u64) -> Usage {
        Usage {
            instance_type: t.map(str::to_string),
            market,
            node_seconds,
        }
    }

    fn prices() -> Prices {
        Prices {
            spot: [
                ("c7g.8xlarge".to_string(), 0.50),
                ("m7g.8xlarge".to_string(), 0.60),
            ]
            .into(),
            on_demand: [("c7g.8xlarge".to_string(), 1.20)].into(),
        }
    }

    #[test]
    fn two_types_on_spot_are_their_hours_times_their_spot_prices() {
        let c = price(
            &[
                u(Some("c7g.8xlarge"), Market::Spot, 7200),
                u(Some("m7g.8xlarge"), Market::Spot, 1800),
                u(Some("c7g.8xlarge"), Market::Spot, 3600),
            ],
            &prices(),
        );
        assert_eq!(c.node_seconds, 12_600);
        assert!((c.instance_hours - 3.5).abs() < 1e-9);
        // 3 h × 0.50 + 0.5 h × 0.60
        let usd = c.usd.expect("every price known");
        assert!((usd - 1.8).abs() < 1e-9, "{usd}");
        assert_eq!(c.types.len(), 2, "one line per type and market");
        assert_eq!(c.types[0].instance_type.as_deref(), Some("c7g.8xlarge"));
        assert_eq!(c.types[0].node_seconds, 10_800);
        assert_eq!(c.unpriced_instance_hours, 0.0);
    }

    #[test]
    fn on_demand_nodes_pay_the_on_demand_price_not_the_spot_price() {
        let c = price(
            &[
                u(Some("c7g.8xlarge"), Market::Spot, 3600),
                u(Some("c7g.8xlarge"), Market::OnDemand, 3600),
            ],
            &prices(),
        );
        let usd = c.usd.unwrap();
        assert!((usd - 1.70).abs() < 1e-9, "0.50 + 1.20, got {usd}");
        let od = c
            .types
            .iter()
            .find(|t| t.market == Market::OnDemand)
            .unwrap();
        assert_eq!(od.usd_per_hour, Some(1.20));
    }

    #[test]
    fn an_unknown_price_leaves_the_dollars_unknown_not_zero() {
        let c = price(
            &[
                u(Some("c7g.8xlarge"), Market::Spot, 3600),
                // No on-demand price for m7g.8xlarge.
                u(Some("m7g.8xlarge"), Market::OnDemand, 7200),
                // A node whose type the pool did not say.
                u(None, Market::Spot, 1800),
            ],
            &prices(),
        );
        assert_eq!(c.usd, None);
        assert!((c.usd_priced - 0.50).abs() < 1e-9);
        assert!((c.unpriced_instance_hours - 2.5).abs() < 1e-9);
        let m = c
            .types
            .iter()
            .find(|t| t.instance_type.as_deref() == Some("m7g.8xlarge"))
            .unwrap();
        assert_eq!((m.usd_per_hour, m.usd), (None, None));
    }

    #[test]
    fn a_bad_price_is_unknown_and_no_time_costs_nothing() {
        let p = Prices {
            spot: [("c7g.8xlarge".to_string(), f64::NAN)].into(),
            ..Prices::default()
        };
        assert_eq!(
            price(&[u(Some("c7g.8xlarge"), Market::Spot, 60)], &p).usd,
            None
        );
        let none = price(&[], &p);
        assert_eq!((none.usd, none.node_seconds), (Some(0.0), 0));
        assert!(price(&[u(Some("x.large"), Market::Spot, 0)], &p)
            .types
            .is_empty());
    }

    #[test]
    fn the_types_to_price_per_market() {
        let usage = [
            u(Some("m7g.8xlarge"), Market::Spot, 10),
            u(Some("c7g.8xlarge"), Market::Spot, 10),
            u(Some("c7g.8xlarge"), Market::Spot, 5),
            u(Some("r7g.8xlarge"), Market::OnDemand, 10),
            u(None, Market::Spot, 10),
        ];
        assert_eq!(
            types_on(&usage, Market::Spot),
            ["c7g.8xlarge", "m7g.8xlarge"]
        );
        assert_eq!(types_on(&usage, Market::OnDemand), ["r7g.8xlarge"]);
    }

    #[test]
    fn the_json_names_of_a_cost() {
        let c = price(&[u(Some("c7g.8xlarge"), Market::OnDemand, 3600)], &prices());
        let j = serde_json::to_value(&c).unwrap();
        for k in [
            "node_seconds",
            "instance_hours",
            "usd",
            "usd_priced",
            "unpriced_instance_hours",
            "types",
        ] {
            assert!(j.get(k).is_some(), "{k} in {j}");
        }
        assert_eq!(j["types"][0]["market"], "on_demand");
        let back: PlatformCost = serde_json::from_value(j).unwrap();
        assert_eq!(back, c);
    }
}
