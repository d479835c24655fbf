//! A stand-in service for osmen's Docker tests: one static binary, std only, that runs in a
//! `FROM scratch` image. It serves `/health` and can be told to exit, burn CPU, allocate
//! memory or turn unhealthy, so tests can make a container do what real services do.
//!
//!   standin [serve]     serve HTTP on $PORT (8080)
//!   standin probe URL   exit 0 when URL answers 200 (used as an exec health check)
//!
//! Environment for `serve`: STANDIN_READY_AFTER_MS (health is 503 until then),
//! STANDIN_EXIT_AFTER_MS with STANDIN_EXIT_CODE (exit on its own), STANDIN_NAME (in logs),
//! STANDIN_BURN_THREADS (threads spinning forever), STANDIN_HOLD_MB (memory held).
//! As a scripted Ollama: STANDIN_OLLAMA_EVAL (the JSON members after "message" in each
//! `/api/chat` answer: eval counts and durations), STANDIN_OLLAMA_PS (the `/api/ps`
//! body) and STANDIN_OLLAMA_BLOBS (`name=sha256-...,...`: the model file `/api/show`
//! names for each model).
//! As an Ollama that keeps models (STANDIN_OLLAMA_PULLABLE=`name=bytes,...`, the models
//! `/api/pull` can fetch; any other answers Ollama's "file does not exist"): `/api/pull`
//! streams Ollama's progress lines, `/api/create` derives a model (`from`, with
//! `parameters.num_ctx`), `/api/generate` loads a model for `keep_alive` (0 unloads it, a
//! negative one keeps it loaded), and `/api/tags` and `/api/ps` (with `expires_at`,
//! `context_length`, `size_vram`) report what is installed and loaded. STANDIN_OLLAMA_PULL_MS
//! paces the progress lines (default 50).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

unsafe extern "C" {
    fn signal(sig: i32, handler: usize) -> usize;
    fn _exit(code: i32) -> !;
    fn clock_gettime(clock: i32, ts: *mut [i64; 2]) -> i32;
}

/// This thread's CPU time in nanoseconds (CLOCK_THREAD_CPUTIME_ID).
fn cpu_time() -> u64 {
    let mut ts = [0i64; 2];
    // SAFETY: `ts` matches struct timespec on 64-bit Linux (two 64-bit fields).
    unsafe { clock_gettime(3, &mut ts) };
    ts[0] as u64 * 1_000_000_000 + ts[1] as u64
}

extern "C" fn on_term(_: i32) {
    // Only async-signal-safe work here: leave at once, as a well-behaved service does.
    unsafe { _exit(0) }
}

fn env_ms(name: &str) -> Option<Duration> {
    std::env::var(name).ok()?.parse().ok().map(Duration::from_millis)
}

fn query(path: &str, key: &str) -> Option<u64> {
    let q = path.split_once('?')?.1;
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
}

fn respond_json(s: &mut TcpStream, code: u16, body: &str) {
    let resp = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        if code == 200 { "OK" } else { "Not Found" },
        body.len()
    );
    let _ = s.write_all(resp.as_bytes());
}

/// The body of a request whose head is in `req` (reads the rest from `s`).
fn read_body(s: &mut TcpStream, req: &[u8]) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(req);
    let head_end = req.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let want = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = req[head_end..].to_vec();
    let mut buf = [0u8; 4096];
    // Read the whole body: closing with unread bytes would reset the connection.
    while body.len() < want {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => body.extend_from_slice(&buf[..n]),
        }
    }
    Some(body)
}

/// The string value of `"key":"..."` in a small JSON text (no escapes in model names).
fn json_str(text: &str, key: &str) -> Option<String> {
    let at = text.find(&format!("\"{key}\""))?;
    let rest = text[at + key.len() + 2..].trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

/// One installed model of the stand-in Ollama: name, size, context length.
#[derive(Clone)]
struct Installed {
    name: String,
    size: u64,
    ctx: u64,
}

/// What the stand-in Ollama holds: installed models, and loaded ones with the Unix time
/// they unload (None: never).
#[derive(Default)]
struct Store {
    installed: Vec<Installed>,
    loaded: Vec<(String, Option<u64>)>,
}

/// `llama3.2` is `llama3.2:latest`, as Ollama names it.
fn full_name(n: &str) -> String {
    if n.contains(':') { n.to_string() } else { format!("{n}:latest") }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// RFC 3339 in UTC for a Unix time (days to civil date, as in Howard Hinnant's algorithm).
fn rfc3339(t: u64) -> String {
    let days = (t / 86_400) as i64;
    let secs = t % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

/// A number after `"key":` in a small JSON text.
fn json_num(text: &str, key: &str) -> Option<i64> {
    let at = text.find(&format!("\"{key}\""))?;
    let rest = text[at + key.len() + 2..].trim_start().strip_prefix(':')?.trim_start();
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '-')).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// `keep_alive` in seconds (a number, or "5m", "30s", "-1"); None when absent.
fn keep_alive(text: &str) -> Option<i64> {
    if let Some(v) = json_str(text, "keep_alive") {
        let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
        let n: f64 = num.parse().ok()?;
        let mult = match unit { "h" => 3600.0, "m" => 60.0, "ms" => 0.001, _ => 1.0 };
        return Some((n * mult) as i64);
    }
    json_num(text, "keep_alive")
}

/// Streams NDJSON lines, each written as it is ready (the body ends when the connection
/// closes, as HTTP/1.1 allows).
fn stream_lines(s: &mut TcpStream, lines: &[String], pace: Duration) {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nConnection: close\r\n\r\n";
    let _ = s.write_all(head.as_bytes());
    for l in lines {
        let _ = s.write_all(format!("{l}\n").as_bytes());
        let _ = s.flush();
        std::thread::sleep(pace);
    }
}

/// The stand-in Ollama's model endpoints; false when `path` is none of them (or the store
/// is off).
fn ollama_store(s: &mut TcpStream, path: &str, req: &[u8], store: &Mutex<Store>) -> bool {
    let Ok(pullable) = std::env::var("STANDIN_OLLAMA_PULLABLE") else { return false };
    if !matches!(path, "/api/pull" | "/api/create" | "/api/generate" | "/api/tags" | "/api/ps") {
        return false;
    }
    let body = if path == "/api/tags" || path == "/api/ps" {
        String::new()
    } else {
        match read_body(s, req) {
            Some(b) => String::from_utf8_lossy(&b).into_owned(),
            None => return true,
        }
    };
    let mut st = store.lock().unwrap_or_else(|p| p.into_inner());
    let now = unix_now();
    st.loaded.retain(|(_, until)| until.is_none_or(|u| u > now));
    let pace = env_ms("STANDIN_OLLAMA_PULL_MS").unwrap_or(Duration::from_millis(50));
    match path {
        "/api/pull" => {
            let name = full_name(&json_str(&body, "model").or_else(|| json_str(&body, "name")).unwrap_or_default());
            let size = pullable
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| full_name(k) == name)
                .and_then(|(_, v)| v.parse::<u64>().ok());
            let Some(size) = size else {
                drop(st);
                stream_lines(s, &["{\"status\":\"pulling manifest\"}".into(),
                    "{\"error\":\"pull model manifest: file does not exist\"}".into()], pace);
                return true;
            };
            if !st.installed.iter().any(|m| m.name == name) {
                st.installed.push(Installed { name: name.clone(), size, ctx: 4096 });
            }
            drop(st);
            let digest = "sha256:6a0746a1ec1aef3e7ec53868f220ff6e389f6f8ef87a01d77c96807de94ca2aa";
            let mut lines = vec!["{\"status\":\"pulling manifest\"}".to_string()];
            for part in [0, 1, 2, 3, 4] {
                lines.push(format!(
                    "{{\"status\":\"pulling {}\",\"digest\":\"{digest}\",\"total\":{size},\"completed\":{}}}",
                    &digest[7..19], size * part / 4
                ));
            }
            for l in ["verifying sha256 digest", "writing manifest", "success"] {
                lines.push(format!("{{\"status\":\"{l}\"}}"));
            }
            stream_lines(s, &lines, pace);
        }
        "/api/create" => {
            let name = full_name(&json_str(&body, "model").unwrap_or_default());
            let from = full_name(&json_str(&body, "from").unwrap_or_default());
            let Some(base) = st.installed.iter().find(|m| m.name == from).cloned() else {
                drop(st);
                respond_json(s, 404, &format!("{{\"error\":\"model '{from}' not found\"}}"));
                return true;
            };
            let ctx = json_num(&body, "num_ctx").map_or(base.ctx, |n| n as u64);
            st.installed.retain(|m| m.name != name);
            st.installed.push(Installed { name, size: base.size, ctx });
            drop(st);
            stream_lines(s, &["{\"status\":\"using existing layer\"}".into(),
                "{\"status\":\"writing manifest\"}".into(), "{\"status\":\"success\"}".into()], pace);
        }
        "/api/generate" => {
            let name = full_name(&json_str(&body, "model").unwrap_or_default());
            if !st.installed.iter().any(|m| m.name == name) {
                drop(st);
                respond_json(s, 404, &format!("{{\"error\":\"model \\\"{name}\\\" not found, try pulling it first\"}}"));
                return true;
            }
            let keep = keep_alive(&body).unwrap_or(300);
            st.loaded.retain(|(n, _)| *n != name);
            let reason = if keep == 0 {
                "unload"
            } else {
                st.loaded.push((name.clone(), (keep > 0).then(|| now + keep as u64)));
                "load"
            };
            drop(st);
            respond_json(s, 200, &format!(
                "{{\"model\":\"{name}\",\"created_at\":\"{}\",\"response\":\"\",\"done\":true,\"done_reason\":\"{reason}\"}}",
                rfc3339(now)
            ));
        }
        "/api/tags" => {
            let list: Vec<String> = st.installed.iter()
                .map(|m| format!("{{\"name\":\"{0}\",\"model\":\"{0}\",\"size\":{1}}}", m.name, m.size))
                .collect();
            drop(st);
            respond_json(s, 200, &format!("{{\"models\":[{}]}}", list.join(",")));
        }
        _ => {
            let list: Vec<String> = st.loaded.iter().filter_map(|(n, until)| {
                let m = st.installed.iter().find(|m| &m.name == n)?;
                // A model kept loaded for good: Ollama reports an expiry centuries away.
                let exp = rfc3339(until.unwrap_or(now + 292 * 365 * 86_400));
                Some(format!(
                    "{{\"name\":\"{n}\",\"model\":\"{n}\",\"size\":{0},\"size_vram\":{0},\"expires_at\":\"{exp}\",\"context_length\":{1}}}",
                    m.size, m.ctx
                ))
            }).collect();
            drop(st);
            respond_json(s, 200, &format!("{{\"models\":[{}]}}", list.join(",")));
        }
    }
    true
}

fn respond(s: &mut TcpStream, code: u16, body: &str) {
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Service Unavailable",
    };
    let resp = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(resp.as_bytes());
}

fn serve() {
    unsafe {
        signal(15, on_term as *const () as usize);
        signal(2, on_term as *const () as usize);
    }
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let name = std::env::var("STANDIN_NAME").unwrap_or_else(|_| "standin".into());
    let started = Instant::now();
    let ready_after = env_ms("STANDIN_READY_AFTER_MS").unwrap_or_default();
    if let Some(after) = env_ms("STANDIN_EXIT_AFTER_MS") {
        let code: i32 = std::env::var("STANDIN_EXIT_CODE")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        let name = name.clone();
        std::thread::spawn(move || {
            std::thread::sleep(after);
            println!("{name}: exiting with code {code} as configured");
            std::process::exit(code);
        });
    }
    // A steady trickle of output for the console's Logs view.
    if let Some(every) = env_ms("STANDIN_LOG_EVERY_MS") {
        let name = name.clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            loop {
                std::thread::sleep(every);
                n += 1;
                if n % 5 == 0 {
                    eprintln!("{name}: warning: tick {n} took longer than usual");
                } else {
                    println!("{name}: tick {n} ok");
                }
            }
        });
    }
    // Steady load for the collectors' fidelity tests.
    let burners: usize = std::env::var("STANDIN_BURN_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // STANDIN_BURN_DUTY: percent of each 100 ms period a burner spins (default 100), so a
    // fixed amount of work that a bigger CPU limit makes a smaller share of.
    let duty: u64 = std::env::var("STANDIN_BURN_DUTY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
        .min(100);
    for _ in 0..burners {
        std::thread::spawn(move || {
            let mut x = 1u64;
            loop {
                let period = Instant::now();
                // CPU time, not wall time: under a CPU limit the work stays the same.
                let start = cpu_time();
                while cpu_time().saturating_sub(start) < duty * 1_000_000 {
                    for _ in 0..10_000 {
                        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                    }
                }
                if duty < 100 {
                    std::thread::sleep(Duration::from_millis(100).saturating_sub(period.elapsed()));
                }
            }
        });
    }
    let held: Vec<u8> = match std::env::var("STANDIN_HOLD_MB").ok().and_then(|v| v.parse::<usize>().ok()) {
        // Every page written, so the memory is resident, not just reserved.
        Some(mb) => vec![7u8; mb << 20],
        None => Vec::new(),
    };
    let _held = std::hint::black_box(held);
    let listener = TcpListener::bind(format!("0.0.0.0:{port}")).unwrap_or_else(|e| {
        eprintln!("{name}: cannot listen on port {port}: {e}");
        std::process::exit(3)
    });
    println!("{name}: listening on 0.0.0.0:{port}");
    let unhealthy = Arc::new(AtomicBool::new(false));
    let hoard: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let store: Arc<Mutex<Store>> = Arc::default();
    for conn in listener.incoming() {
        let Ok(mut s) = conn else { continue };
        let unhealthy = unhealthy.clone();
        let hoard = hoard.clone();
        let store = store.clone();
        let name = name.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut req = Vec::new();
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
                if req.len() > 65536 {
                    return;
                }
            }
            let text = String::from_utf8_lossy(&req);
            let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
            let route = path.split('?').next().unwrap_or("/");
            if ollama_store(&mut s, route, &req, &store) {
                return;
            }
            match route {
                "/health" | "/healthz" => {
                    if unhealthy.load(Ordering::SeqCst) {
                        respond(&mut s, 500, "unhealthy: told to fail\n")
                    } else if started.elapsed() < ready_after {
                        respond(&mut s, 503, "starting\n")
                    } else {
                        respond(&mut s, 200, "ok\n")
                    }
                }
                "/unhealthy" => {
                    unhealthy.store(true, Ordering::SeqCst);
                    respond(&mut s, 200, "will fail health checks\n")
                }
                "/exit" => {
                    let code = query(&path, "code").unwrap_or(1) as i32;
                    respond(&mut s, 200, "bye\n");
                    let _ = s.flush();
                    println!("{name}: exit requested with code {code}");
                    std::process::exit(code);
                }
                "/burn" => {
                    let ms = query(&path, "ms").unwrap_or(1000);
                    let end = Instant::now() + Duration::from_millis(ms);
                    let mut x = 0u64;
                    while Instant::now() < end {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    }
                    respond(&mut s, 200, &format!("burned {ms} ms ({x})\n"))
                }
                // A stand-in Ollama for load tests: /api/chat answers after
                // STANDIN_CHAT_DELAY_MS (default 20) with a short completion.
                "/api/chat" => {
                    let Some(req_body) = read_body(&mut s, &req) else { return };
                    let delay = env_ms("STANDIN_CHAT_DELAY_MS").unwrap_or(Duration::from_millis(20));
                    std::thread::sleep(delay);
                    let model = json_str(&String::from_utf8_lossy(&req_body), "model")
                        .unwrap_or_else(|| "standin".into());
                    let eval = std::env::var("STANDIN_OLLAMA_EVAL")
                        .unwrap_or_else(|_| "\"prompt_eval_count\":10,\"eval_count\":2".into());
                    let body = format!(
                        "{{\"model\":\"{model}\",\"done\":true,\"message\":{{\"role\":\"assistant\",\
                         \"content\":\"ok\"}},{eval}}}"
                    );
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                         Connection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = s.write_all(resp.as_bytes());
                }
                "/api/version" => respond_json(&mut s, 200, "{\"version\":\"0.5.7-standin\"}"),
                "/api/ps" => {
                    let ps = std::env::var("STANDIN_OLLAMA_PS").unwrap_or_else(|_| "{\"models\":[]}".into());
                    respond_json(&mut s, 200, &ps)
                }
                "/api/tags" => {
                    let blobs = std::env::var("STANDIN_OLLAMA_BLOBS").unwrap_or_default();
                    let names: Vec<String> = blobs
                        .split(',')
                        .filter_map(|kv| kv.split_once('='))
                        .map(|(k, _)| format!("{{\"name\":\"{k}\"}}"))
                        .collect();
                    respond_json(&mut s, 200, &format!("{{\"models\":[{}]}}", names.join(",")))
                }
                "/api/show" => {
                    let Some(req_body) = read_body(&mut s, &req) else { return };
                    let name = json_str(&String::from_utf8_lossy(&req_body), "model").unwrap_or_default();
                    let blobs = std::env::var("STANDIN_OLLAMA_BLOBS").unwrap_or_default();
                    match blobs.split(',').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == name) {
                        Some((_, blob)) => respond_json(
                            &mut s,
                            200,
                            &format!("{{\"modelfile\":\"FROM /root/.ollama/models/blobs/{blob}\\n\"}}"),
                        ),
                        None => respond_json(&mut s, 404, "{\"error\":\"model not found\"}"),
                    }
                }
                "/alloc" => {
                    let mb = query(&path, "mb").unwrap_or(1) as usize;
                    // Touch every page so the memory is really resident.
                    let v = vec![1u8; mb << 20];
                    hoard.lock().unwrap_or_else(|p| p.into_inner()).push(v);
                    respond(&mut s, 200, &format!("holding {mb} MiB more\n"))
                }
                _ => respond(&mut s, 404, "not found\n"),
            }
        });
    }
}

fn probe(url: &str) -> i32 {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut s = match TcpStream::connect(host) {
        Ok(s) => s,
        Err(e) => {
            println!("probe {url}: {e}");
            return 1;
        }
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let _ = s.write_all(req.as_bytes());
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let status = resp.split_whitespace().nth(1).unwrap_or("").to_string();
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or("").trim().to_string();
    println!("probe {url}: {status} {body}");
    i32::from(status != "200")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        None | Some("serve") => serve(),
        Some("probe") => std::process::exit(probe(
            args.get(2).map(String::as_str).unwrap_or("http://127.0.0.1:8080/health"),
        )),
        Some(other) => {
            eprintln!("standin: unknown command {other:?}; use serve or probe URL");
            std::process::exit(2)
        }
    }
}
