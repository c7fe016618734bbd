//! Prometheus metrics: what operators need to see about plugin traffic.
//!
//! One [`Metrics`] per process, passed explicitly (no global registry), shared by the HTTP
//! layer (requests, latency, in-flight) and the runner (instantiation, compiled-plugin cache).

use std::{collections::HashMap, num::NonZeroUsize, time::Duration};

use lru::LruCache;
use parking_lot::Mutex;

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// Empty when the request named no existing plugin, so that clients cannot create an
    /// unbounded number of series by sending made-up names.
    plugin: String,
    /// `ok`, or the error code of the answer.
    outcome: String,
    /// The client's name from the tokens file (`-` when tokens are off or no valid token was
    /// sent): only names the operator wrote become label values.
    client: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabel {
    plugin: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    /// `hit`: the compiled current version was reused; `miss`: the file was read again.
    result: &'static str,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<PluginLabel, Histogram>,
    instantiation: Histogram,
    cache: Family<CacheLabels, Counter>,
    in_flight: Gauge,
    worker_crashes: Family<PluginLabel, Counter>,
    queued: Counter,
    quarantined: Family<PluginLabel, Gauge>,
    config_errors: Family<PluginLabel, Counter>,
    /// The plugin names that have series, most recently used last, with their request series:
    /// when more than the limit have series, the least recently used name's series are removed,
    /// so `/metrics` stays bounded however many plugins come and go.
    labelled: Mutex<LruCache<String, RequestSeries>>,
}

/// A plugin name's request series: the handles themselves (they share their values with the
/// families), so that counting another call takes no allocation and no lookup in a family.
#[derive(Debug, Default)]
struct RequestSeries {
    /// By client, then outcome.
    counts: HashMap<String, HashMap<String, Counter>>,
    latency: Option<Histogram>,
}

/// Most plugin names with series in `/metrics` at once (default of [`Metrics::new`]).
pub const MAX_PLUGIN_SERIES: usize = 1000;

/// Upper bounds of the latency histograms, in seconds: 50 us to 5 s in 1-2.5-5 steps, from a
/// cached fast call to one past the default deadline. Written out rather than computed, so that
/// `/metrics` prints each bound as the exact decimal it is here (`0.00025`, not the
/// `0.00025000000000000006` a multiplication gives).
pub const LATENCY_BUCKETS: [f64; 16] =
    [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

fn latency_buckets() -> impl Iterator<Item = f64> {
    LATENCY_BUCKETS.into_iter()
}

impl Default for Metrics {
    fn default() -> Self {
        Self::with_plugin_series_limit(MAX_PLUGIN_SERIES)
    }
}

impl Metrics {
    /// A registry keeping series for at most `limit` plugin names.
    pub fn with_plugin_series_limit(limit: usize) -> Self {
        let mut registry = Registry::with_prefix("plugin_host");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("requests", "Plugin run requests by plugin and outcome", requests.clone());
        let latency = Family::<PluginLabel, Histogram>::new_with_constructor(|| Histogram::new(latency_buckets()));
        registry.register("request_duration_seconds", "Time to answer a run request", latency.clone());
        let instantiation = Histogram::new(latency_buckets());
        registry.register(
            "instantiation_duration_seconds",
            "Time to create a fresh plugin instance",
            instantiation.clone(),
        );
        let cache = Family::<CacheLabels, Counter>::default();
        registry.register("plugin_cache", "Compiled-plugin cache lookups by result", cache.clone());
        let in_flight = Gauge::default();
        registry.register("requests_in_flight", "Plugin calls running now", in_flight.clone());
        let worker_crashes = Family::<PluginLabel, Counter>::default();
        registry.register("worker_crashes", "Worker processes lost while running a plugin", worker_crashes.clone());
        let queued = Counter::default();
        registry.register(
            "worker_calls_queued",
            "Calls queued on a worker process busy with calls before them (worker isolation, under load)",
            queued.clone(),
        );
        let quarantined = Family::<PluginLabel, Gauge>::default();
        registry.register(
            "plugin_quarantined",
            "1 while a plugin is quarantined for crashing workers",
            quarantined.clone(),
        );
        let config_errors = Family::<PluginLabel, Counter>::default();
        registry.register(
            "config_errors",
            "Configuration files found unusable (not JSON, too large, or refused by the plugin's init)",
            config_errors.clone(),
        );
        let labelled = Mutex::new(LruCache::new(NonZeroUsize::new(limit).unwrap_or(NonZeroUsize::MIN)));
        Metrics {
            registry,
            requests,
            latency,
            instantiation,
            cache,
            in_flight,
            worker_crashes,
            queued,
            quarantined,
            config_errors,
            labelled,
        }
    }

    /// Notes that `plugin` has series, removing the series of the plugin name that falls out
    /// of the bounded set, and counts with `count` (given `plugin`'s request series) under the
    /// lock that evicting takes: no count lands on a series after its removal.
    fn track(&self, plugin: &str, count: impl FnOnce(&mut RequestSeries)) {
        let mut labelled = self.labelled.lock();
        if !labelled.contains(plugin) {
            let evicted = labelled.push(plugin.to_owned(), RequestSeries::default());
            if let Some((name, series)) = evicted.filter(|(name, _)| name != plugin) {
                let label = PluginLabel { plugin: name };
                for (client, outcomes) in series.counts {
                    for outcome in outcomes.into_keys() {
                        let client = client.clone();
                        self.requests.remove(&RequestLabels { plugin: label.plugin.clone(), outcome, client });
                    }
                }
                self.latency.remove(&label);
                self.worker_crashes.remove(&label);
                self.quarantined.remove(&label);
                self.config_errors.remove(&label);
            }
        }
        count(labelled.get_mut(plugin).expect("just looked up or added"));
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// The Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }

    /// Counts a call of `plugin` (`None`: no plugin the store has) by `client` (a name from
    /// the tokens file, or `api::NO_CLIENT`).
    pub fn observe_request(&self, plugin: Option<&str>, client: &str, outcome: &str, duration: Duration) {
        let labels = |plugin: &str| RequestLabels {
            plugin: plugin.to_owned(),
            outcome: outcome.to_owned(),
            client: client.to_owned(),
        };
        let Some(plugin) = plugin.filter(|plugin| !plugin.is_empty()) else {
            self.requests.get_or_create(&labels("")).inc();
            return;
        };
        self.track(plugin, |series| {
            let counts = match series.counts.get_mut(client) {
                Some(counts) => counts,
                None => series.counts.entry(client.to_owned()).or_default(),
            };
            match counts.get(outcome) {
                Some(count) => count.inc(),
                None => {
                    let count = self.requests.get_or_create(&labels(plugin)).clone();
                    counts.entry(outcome.to_owned()).or_insert(count).inc()
                }
            };
            let latency = series
                .latency
                .get_or_insert_with(|| self.latency.get_or_create(&PluginLabel { plugin: plugin.to_owned() }).clone());
            latency.observe(duration.as_secs_f64());
        });
    }

    /// The calls in flight now (the host counts them; the gauge shows its count at each scrape).
    pub fn set_in_flight(&self, calls: usize) {
        self.in_flight.set(i64::try_from(calls).unwrap_or(i64::MAX));
    }
}

/// The library reports what it does; these are the series it feeds.
impl plugin_host::Observer for Metrics {
    fn instance_ready(&self, took: Duration) {
        self.instantiation.observe(took.as_secs_f64());
    }

    fn plugin_lookup(&self, cached: bool) {
        self.cache.get_or_create(&CacheLabels { result: if cached { "hit" } else { "miss" } }).inc();
    }

    fn call_queued(&self) {
        self.queued.inc();
    }

    fn worker_died(&self, plugin: &plugin_host::PluginName) {
        let label = PluginLabel { plugin: plugin.to_string() };
        self.track(plugin.as_str(), |_| {
            self.worker_crashes.get_or_create(&label).inc();
        });
    }

    fn configuration_refused(&self, plugin: &plugin_host::PluginName) {
        let label = PluginLabel { plugin: plugin.to_string() };
        self.track(plugin.as_str(), |_| {
            self.config_errors.get_or_create(&label).inc();
        });
    }

    fn quarantine_changed(&self, plugin: &plugin_host::PluginName, quarantined: bool) {
        let label = PluginLabel { plugin: plugin.to_string() };
        self.track(plugin.as_str(), |_| {
            self.quarantined.get_or_create(&label).set(i64::from(quarantined));
        });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use plugin_host::{Observer, PluginName};

    use super::*;

    /// The `le` label of every bucket line of `metric`, in order.
    fn bucket_bounds(text: &str, metric: &str) -> Vec<String> {
        let prefix = format!("{metric}_bucket{{");
        text.lines()
            .filter(|line| line.starts_with(&prefix))
            .map(|line| line.split("le=\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap().to_owned())
            .collect()
    }

    #[test]
    fn histogram_bounds_print_as_the_decimals_they_were_configured_as() {
        let metrics = Metrics::new();
        metrics.observe_request(Some("hello"), "-", "ok", Duration::from_micros(300));
        Observer::instance_ready(&metrics, Duration::from_micros(30));
        let text = metrics.encode();
        let expected = [
            "0.00005", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
            "0.25", "0.5", "1.0", "2.5", "5.0", "+Inf",
        ];
        for metric in ["plugin_host_request_duration_seconds", "plugin_host_instantiation_duration_seconds"] {
            assert_eq!(bucket_bounds(&text, metric), expected, "{metric}:\n{text}");
        }
    }

    #[test]
    fn series_stay_bounded_however_many_plugins_come_and_go() {
        let metrics = Metrics::with_plugin_series_limit(3);
        for i in 0..10 {
            let plugin = format!("plugin-{i}");
            metrics.observe_request(Some(&plugin), "-", "ok", Duration::from_micros(100));
            metrics.observe_request(Some(&plugin), "-", "plugin_error", Duration::from_micros(100));
            metrics.worker_died(&PluginName::new(&plugin).unwrap());
            metrics.quarantine_changed(&PluginName::new(&plugin).unwrap(), true);
        }
        let text = metrics.encode();
        for i in 0..10 {
            let present = text.contains(&format!("plugin=\"plugin-{i}\""));
            assert_eq!(present, i >= 7, "plugin-{i}:\n{text}");
        }
        // Every series of the last three is there.
        assert!(
            text.contains(r#"plugin_host_requests_total{plugin="plugin-9",outcome="plugin_error",client="-"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"plugin_host_plugin_quarantined{plugin="plugin-9"} 1"#), "{text}");
    }

    /// The metric names a scraper sees (a counter's samples carry `_total`), from the encoding's
    /// `# TYPE` lines.
    fn exposed_names(text: &str) -> BTreeSet<String> {
        text.lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .map(|rest| match rest.split_once(' ') {
                Some((name, "counter")) => format!("{name}_total"),
                Some((name, _)) => name.to_owned(),
                None => rest.to_owned(),
            })
            .collect()
    }

    /// The README's `GET /metrics` row names exactly the metrics the host exposes.
    #[test]
    fn the_readme_lists_every_metric() {
        // A labelled family is encoded once it has a series: give each one.
        let metrics = Metrics::new();
        metrics.observe_request(Some("hello"), "-", "ok", Duration::from_micros(100));
        Observer::plugin_lookup(&metrics, true);
        metrics.worker_died(&PluginName::new("hello").unwrap());
        metrics.quarantine_changed(&PluginName::new("hello").unwrap(), true);
        metrics.configuration_refused(&PluginName::new("hello").unwrap());
        let exposed = exposed_names(&metrics.encode());
        let readme = include_str!("../../README.md");
        let row = readme.lines().find(|line| line.starts_with("| `GET /metrics` |")).expect("a GET /metrics row");
        let listed: BTreeSet<String> = row
            .split('`')
            .filter_map(|code| code.strip_prefix("plugin_host_"))
            .map(|rest| {
                let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                format!("plugin_host_{name}")
            })
            .collect();
        assert!(exposed.len() >= 7, "{exposed:?}");
        assert_eq!(listed, exposed, "README.md's GET /metrics row and the exposed metrics differ");
    }
}
