//! The OpenTelemetry settings, read from the standard `OTEL_*` environment variables.

use std::collections::BTreeMap;
use std::time::Duration;

use opentelemetry_sdk::metrics::Temporality;

use crate::model::secret::mask_url_credentials;

/// The service name when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` gives one.
pub const DEFAULT_SERVICE_NAME: &str = "osmen-gateway";
/// The OTLP exporter's default per-request timeout (`OTEL_EXPORTER_OTLP_TIMEOUT`).
pub const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// The SDK's default metric export interval (`OTEL_METRIC_EXPORT_INTERVAL`).
pub const DEFAULT_METRIC_INTERVAL: Duration = Duration::from_secs(60);
/// The SDK's default delay between span batches (`OTEL_BSP_SCHEDULE_DELAY`).
pub const DEFAULT_SPAN_DELAY: Duration = Duration::from_secs(5);

/// Where and how one signal (traces or metrics) is exported.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    /// The full URL requests are posted to.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
}

/// The OpenTelemetry settings read from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub traces: Option<Signal>,
    pub metrics: Option<Signal>,
    pub service_name: String,
    /// `OTEL_RESOURCE_ATTRIBUTES`, decoded, `service.name` excluded.
    pub resource: Vec<(String, String)>,
    pub metric_interval: Duration,
    pub span_delay: Duration,
    pub temporality: Temporality,
}

/// A setting the gateway cannot export with; each names the variable and says what to
/// give instead. Values are quoted except headers' and resource entries' (tokens).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OtelConfigError {
    #[error("{var}: entry {entry} has no '=': write key=value pairs separated by commas")]
    NoEquals { var: String, entry: usize },
    #[error("{var}: entry {entry} has an empty key")]
    EmptyKey { var: String, entry: usize },
    #[error("{var}={value:?}: give a whole number of milliseconds")]
    NotMillis { var: String, value: String },
    #[error(
        "{var}={value:?}: the gateway exports {signal} only with \"otlp\" (or \"none\" for no \
         {signal})"
    )]
    Exporter {
        var: String,
        value: String,
        signal: String,
    },
    /// `url` is shown with its credentials masked.
    #[error(
        "{var}={url:?} is not a URL ({reason}): give the collector's OTLP/HTTP address, e.g. \
         http://localhost:4318"
    )]
    NotUrl {
        var: String,
        url: String,
        /// The URL parser's words.
        reason: String,
    },
    #[error(
        "{var}={url:?}: OTLP/HTTP needs an http:// or https:// URL (the gateway does not speak \
         gRPC; the collector's HTTP port is usually 4318)"
    )]
    NotHttp { var: String, url: String },
    #[error(
        "{var}={value:?}: the gateway exports OTLP over http/protobuf only; set it to \
         http/protobuf (or unset it) and point the endpoint at the collector's HTTP port \
         (usually 4318)"
    )]
    Protocol { var: String, value: String },
    #[error("{var}={value:?}: the gateway sends OTLP uncompressed; set it to none or unset it")]
    Compression { var: String, value: String },
    #[error("{var}: entry {entry} ({key:?}) is not a valid HTTP header")]
    BadHeader {
        var: String,
        entry: usize,
        key: String,
    },
    #[error("{var}={value:?}: give cumulative, delta or lowmemory")]
    Temporality { var: String, value: String },
}

fn var<'a>(env: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    env.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// `%XX` escapes decoded, as the OTLP exporter spec asks of header and resource values.
pub(super) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A `key1=value1,key2=value2` list (W3C baggage style, values percent-decoded). The error
/// names the variable and the entry but never quotes a value: headers carry tokens.
fn key_values(var_name: &str, s: &str) -> Result<Vec<(String, String)>, OtelConfigError> {
    let mut out = Vec::new();
    for (i, entry) in s.split(',').enumerate() {
        if entry.trim().is_empty() {
            continue;
        }
        let Some((k, v)) = entry.split_once('=') else {
            return Err(OtelConfigError::NoEquals {
                var: var_name.to_string(),
                entry: i + 1,
            });
        };
        let k = percent_decode(k.trim());
        if k.is_empty() {
            return Err(OtelConfigError::EmptyKey {
                var: var_name.to_string(),
                entry: i + 1,
            });
        }
        out.push((k, percent_decode(v.trim())));
    }
    Ok(out)
}

fn millis(env: &BTreeMap<String, String>, key: &str) -> Result<Option<Duration>, OtelConfigError> {
    match var(env, key) {
        None => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .map(|ms| Some(Duration::from_millis(ms)))
            .map_err(|_| OtelConfigError::NotMillis {
                var: key.to_string(),
                value: v.to_string(),
            }),
    }
}

/// One signal's settings: its own variables first, then the shared ones. None when the
/// signal has no endpoint or its exporter is `none`.
fn signal(
    env: &BTreeMap<String, String>,
    name: &str,
    path: &str,
) -> Result<Option<Signal>, OtelConfigError> {
    let upper = name.to_ascii_uppercase();
    let exporter_var = format!("OTEL_{upper}_EXPORTER");
    match var(env, &exporter_var) {
        None | Some("otlp") => {}
        Some("none") => return Ok(None),
        Some(other) => {
            return Err(OtelConfigError::Exporter {
                var: exporter_var,
                value: other.to_string(),
                signal: name.to_string(),
            });
        }
    }
    let own = |suffix: &str| format!("OTEL_EXPORTER_OTLP_{upper}_{suffix}");
    let shared = |suffix: &str| format!("OTEL_EXPORTER_OTLP_{suffix}");
    let either = |suffix: &str| {
        let o = own(suffix);
        match var(env, &o) {
            Some(v) => Some((o, v)),
            None => {
                let s = shared(suffix);
                var(env, &s).map(|v| (s, v))
            }
        }
    };
    // A signal's own endpoint is used as it is; the shared one is a base URL that gets
    // the signal's path (`/v1/traces`, `/v1/metrics`) appended to its own path.
    let (url_var, url) = match var(env, &own("ENDPOINT")) {
        Some(u) => (own("ENDPOINT"), u.to_string()),
        None => match var(env, "OTEL_EXPORTER_OTLP_ENDPOINT") {
            Some(base) => (
                "OTEL_EXPORTER_OTLP_ENDPOINT".to_string(),
                format!("{}{path}", base.trim_end_matches('/')),
            ),
            None => return Ok(None),
        },
    };
    let parsed = reqwest::Url::parse(&url).map_err(|e| OtelConfigError::NotUrl {
        var: url_var.clone(),
        url: mask_url_credentials(&url),
        reason: e.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(OtelConfigError::NotHttp {
            var: url_var,
            url: mask_url_credentials(&url),
        });
    }
    if let Some((pvar, p)) = either("PROTOCOL")
        && p != "http/protobuf"
    {
        return Err(OtelConfigError::Protocol {
            var: pvar,
            value: p.to_string(),
        });
    }
    if let Some((cvar, c)) = either("COMPRESSION")
        && c != "none"
    {
        return Err(OtelConfigError::Compression {
            var: cvar,
            value: c.to_string(),
        });
    }
    let headers = match either("HEADERS") {
        Some((hvar, h)) => {
            let kv = key_values(&hvar, h)?;
            for (i, (k, v)) in kv.iter().enumerate() {
                if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err()
                    || reqwest::header::HeaderValue::from_str(v).is_err()
                {
                    return Err(OtelConfigError::BadHeader {
                        var: hvar,
                        entry: i + 1,
                        key: k.clone(),
                    });
                }
            }
            kv
        }
        None => Vec::new(),
    };
    let timeout = match millis(env, &own("TIMEOUT"))? {
        Some(t) => t,
        None => millis(env, "OTEL_EXPORTER_OTLP_TIMEOUT")?.unwrap_or(DEFAULT_EXPORT_TIMEOUT),
    };
    Ok(Some(Signal {
        url,
        headers,
        timeout: if timeout.is_zero() {
            DEFAULT_EXPORT_TIMEOUT
        } else {
            timeout
        },
    }))
}

impl Config {
    /// The settings, or None when nothing is to be exported: no OTLP endpoint is set,
    /// `OTEL_SDK_DISABLED=true`, or both signals' exporters are `none`.
    pub fn from_env(env: &BTreeMap<String, String>) -> Result<Option<Config>, OtelConfigError> {
        if var(env, "OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let traces = signal(env, "traces", "/v1/traces")?;
        let metrics = signal(env, "metrics", "/v1/metrics")?;
        if traces.is_none() && metrics.is_none() {
            return Ok(None);
        }
        let mut resource = match var(env, "OTEL_RESOURCE_ATTRIBUTES") {
            Some(r) => key_values("OTEL_RESOURCE_ATTRIBUTES", r)?,
            None => Vec::new(),
        };
        let from_resource = resource
            .iter()
            .position(|(k, _)| k == "service.name")
            .map(|i| resource.remove(i).1);
        let service_name = var(env, "OTEL_SERVICE_NAME")
            .map(str::to_string)
            .or(from_resource)
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_string());
        let temporality_var = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE";
        let temporality = match var(env, temporality_var).map(str::to_ascii_lowercase) {
            None => Temporality::Cumulative,
            Some(t) => match t.as_str() {
                "cumulative" => Temporality::Cumulative,
                "delta" => Temporality::Delta,
                "lowmemory" => Temporality::LowMemory,
                _ => {
                    return Err(OtelConfigError::Temporality {
                        var: temporality_var.to_string(),
                        value: t,
                    });
                }
            },
        };
        let positive =
            |d: Option<Duration>, default: Duration| d.filter(|d| !d.is_zero()).unwrap_or(default);
        Ok(Some(Config {
            traces,
            metrics,
            service_name,
            resource,
            metric_interval: positive(
                millis(env, "OTEL_METRIC_EXPORT_INTERVAL")?,
                DEFAULT_METRIC_INTERVAL,
            ),
            span_delay: positive(millis(env, "OTEL_BSP_SCHEDULE_DELAY")?, DEFAULT_SPAN_DELAY),
            temporality,
        }))
    }
}
