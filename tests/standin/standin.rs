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
    for conn in listener.incoming() {
        let Ok(mut s) = conn else { continue };
        let unhealthy = unhealthy.clone();
        let hoard = hoard.clone();
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
