use super::*;

fn temp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("osmen-mem-{}-{name}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

#[tokio::test]
async fn bm25_ranks_and_persists() {
    let p = temp("persist");
    let m = Memory::open(Some(p.clone()), MemoryLimits::default(), None, None);
    for t in [
        "Postgres backups run nightly at 02:00",
        "Redis is a cache; eviction policy allkeys-lru",
        "The backup of qdrant snapshots is weekly",
    ] {
        assert_eq!(m.store(t, vec![]).await.unwrap().1, Mode::Lexical);
    }
    let (r, mode, _) = m.search("when do postgres backups run", 2).await;
    assert_eq!((r[0].id, mode), (1, Mode::Lexical));
    assert!(m.bm25("nothing matches zzz", 3).is_empty());
    let again = Memory::open(Some(p.clone()), MemoryLimits::default(), None, None);
    assert_eq!(again.bm25("redis eviction", 1)[0].id, 2);
    let _ = std::fs::remove_file(&p);
}

/// The BM25 this module had before the word index (every note tokenised per query,
/// every note copied into a hit, a full sort), kept as the reference to rank against.
fn bm25_reference(notes: &[Note], query: &str, top_k: usize) -> Vec<Hit> {
    let docs: Vec<Vec<String>> = notes.iter().map(|d| words(&d.text)).collect();
    let count = docs.len() as f64;
    if count == 0.0 {
        return Vec::new();
    }
    let avg = docs.iter().map(Vec::len).sum::<usize>() as f64 / count;
    let mut df: HashMap<&str, f64> = HashMap::new();
    for d in &docs {
        let mut seen: Vec<&str> = d.iter().map(String::as_str).collect();
        seen.sort_unstable();
        seen.dedup();
        for w in seen {
            *df.entry(w).or_default() += 1.0;
        }
    }
    let q = words(query);
    let mut scored: Vec<Hit> = notes
        .iter()
        .zip(&docs)
        .map(|(note, d)| {
            let len = d.len() as f64;
            let score: f64 = q
                .iter()
                .map(|t| {
                    let f = d.iter().filter(|w| *w == t).count() as f64;
                    if f == 0.0 {
                        return 0.0;
                    }
                    let dfi = df.get(t.as_str()).copied().unwrap_or(0.0);
                    let idf = ((count - dfi + 0.5) / (dfi + 0.5) + 1.0).ln();
                    idf * f * 2.2 / (f + 1.2 * (1.0 - 0.75 + 0.75 * len / avg.max(1.0)))
                })
                .sum();
            Hit {
                id: note.id,
                text: note.text.clone(),
                tags: note.tags.clone(),
                score,
            }
        })
        .filter(|h| h.score > 0.0)
        .collect();
    scored.sort_by(|a, b| b.score.total_cmp(&a.score));
    scored.truncate(top_k);
    scored
}

/// A fixed corpus: prose, repeated words, case, punctuation, duplicates (equal scores,
/// so the tie order shows), an empty-worded note and non-ASCII words.
fn corpus() -> Vec<Note> {
    let texts = [
        "Postgres backups run nightly at 02:00 to the NAS",
        "Redis evicts with allkeys-lru at 1.5 GB; Redis is a cache",
        "Qdrant snapshots are weekly; snapshots go to the NAS",
        "The backup of Postgres is checked weekly by restoring it",
        "Redis evicts with allkeys-lru at 1.5 GB; Redis is a cache",
        "a b c ! ?",
        "Grafana dashboards show the gateway's P99 and the Redis hit ratio",
        "Ollama keeps llama3.2 loaded; VRAM 4 GB; the model is warm",
        "Nightly: backups, backups, backups. Postgres postgres POSTGRES",
        "Café menü straße über Größe",
        "n8n workflows trigger the nightly report at 06:00",
        "Qdrant snapshots are weekly; snapshots go to the NAS",
    ];
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| Note {
            id: i as u64 + 1,
            text: t.to_string(),
            tags: vec![format!("t{i}")],
            vector: None,
        })
        .collect()
}

#[test]
fn bm25_ranks_as_the_reference_did() {
    let notes = corpus();
    let m = Memory::open(None, MemoryLimits::default(), None, None);
    {
        let mut i = m.shared.write();
        for n in &notes {
            let t = tokens(&n.text);
            i.push(n.clone(), t);
        }
    }
    let queries = [
        "when do postgres backups run",
        "redis",
        "REDIS evicts evicts",
        "snapshots NAS weekly",
        "nightly",
        "größe café",
        "nothing matches zzz",
        "",
        "a",
        "the the the",
        "gateway p99 redis hit ratio backups",
    ];
    for q in queries {
        for k in [1, 2, 3, 5, 100] {
            let got = m.bm25(q, k);
            let want = bm25_reference(&notes, q, k);
            assert_eq!(got, want, "query {q:?}, top {k}");
        }
    }
    // The corpus does exercise ties: the duplicate notes score the same, earlier first.
    let r = m.bm25("redis", 3);
    assert_eq!((r[0].score, r[0].id, r[1].id), (r[1].score, 2, 5), "{r:?}");
}

#[test]
fn nearest_ranks_as_a_full_sort_does() {
    let m = Memory::open(None, MemoryLimits::default(), None, None);
    let vs: [&[f32]; 6] = [
        &[1.0, 0.0],
        &[0.0, 1.0],
        &[1.0, 1.0],
        &[-1.0, 0.0],
        &[1.0, 0.0],
        &[1.0, 0.0, 0.0],
    ];
    {
        let mut i = m.shared.write();
        for (n, v) in vs.iter().enumerate() {
            let note = Note {
                id: n as u64 + 1,
                text: format!("note {n}"),
                tags: vec![],
                vector: Some(v.to_vec()),
            };
            let t = tokens(&note.text);
            i.push(note, t);
        }
    }
    let i = m.shared.read();
    let ids = |k| {
        i.nearest(&[1.0, 0.2], k)
            .unwrap()
            .iter()
            .map(|h| h.id)
            .collect::<Vec<_>>()
    };
    // Cosine to (1, 0.2): notes 1 and 5 tie (earlier first), then 3, 2, 4; note 6 has
    // another size and is left out.
    assert_eq!(ids(10), [1, 5, 3, 2, 4]);
    assert_eq!(ids(2), [1, 5]);
    assert!(i.nearest(&[1.0, 0.0, 0.0, 0.0], 3).is_none());
}

#[tokio::test]
async fn bounds_refuse_with_the_key_to_raise() {
    let p = temp("bounds");
    let limits = MemoryLimits {
        max_notes: 3,
        max_note_bytes: 100,
        max_total_bytes: 250,
    };
    let m = Memory::open(Some(p.clone()), limits, None, None);
    let e = m
        .store(&"x".repeat(95), vec!["tags".into(), "12".into()])
        .await;
    assert!(
        matches!(&e, Err(StoreError::TooLarge(m)) if m.contains("101 bytes") && m.contains("memory.max_note_bytes is 100")),
        "{e:?}"
    );
    m.store(&"a".repeat(100), vec![]).await.unwrap();
    m.store(&"b".repeat(100), vec![]).await.unwrap();
    let e = m.store(&"c".repeat(51), vec![]).await;
    assert!(
        matches!(&e, Err(StoreError::Full(m)) if m.contains("memory.max_total_bytes is 250")),
        "{e:?}"
    );
    m.store(&"c".repeat(50), vec![]).await.unwrap();
    let e = m.store("d", vec![]).await;
    assert!(
        matches!(&e, Err(StoreError::Full(m)) if m.contains("memory.max_notes is 3")),
        "{e:?}"
    );
    let u = m.usage();
    assert_eq!((u.notes, u.bytes, u.full), (3, 250, true));
    // Nothing refused reached the file.
    let lines = std::fs::read_to_string(&p).unwrap().lines().count();
    assert_eq!(lines, 3);
    // Opened with tighter bounds: every note is kept and searched, new ones refused.
    let tight = MemoryLimits {
        max_notes: 2,
        ..limits
    };
    let again = Memory::open(Some(p.clone()), tight, None, None);
    let u = again.usage();
    assert_eq!((u.notes, u.full), (3, true));
    assert!(
        u.warning
            .as_deref()
            .unwrap()
            .contains("memory.max_notes = 2"),
        "{u:?}"
    );
    assert_eq!(again.bm25(&"c".repeat(50), 1)[0].id, 3);
    assert!(matches!(
        again.store("e", vec![]).await,
        Err(StoreError::Full(_))
    ));
    let _ = std::fs::remove_file(&p);
}

#[tokio::test]
async fn lines_that_are_not_notes_are_skipped_and_said() {
    let p = temp("bad-lines");
    let good = |id: u64, text: &str| {
        let n = Note {
            id,
            text: text.into(),
            tags: vec![],
            vector: None,
        };
        serde_json::to_vec(&n).unwrap()
    };
    let mut file = good(1, "postgres backups nightly");
    file.extend_from_slice(b"\nnot json\n\xff\xfe{\"id\": 9}\n\n");
    file.extend(good(2, "redis eviction policy"));
    // The last line cut short, as by a crash mid-write.
    file.extend_from_slice(b"\n{\"id\": 3, \"text\": \"cut sh");
    std::fs::write(&p, &file).unwrap();
    let m = Memory::open(Some(p.clone()), MemoryLimits::default(), None, None);
    let u = m.usage();
    assert_eq!(u.notes, 2);
    assert!(u.warning.unwrap().contains("3 lines are not notes"));
    // The next note starts a line of its own, and is read back after a restart.
    let (n, _) = m.store("qdrant snapshots weekly", vec![]).await.unwrap();
    assert_eq!(n.id, 3);
    let again = Memory::open(Some(p.clone()), MemoryLimits::default(), None, None);
    assert_eq!(again.usage().notes, 3);
    assert_eq!(again.bm25("qdrant", 1)[0].id, 3);
    let _ = std::fs::remove_file(&p);
}

#[test]
fn cosine_similarity() {
    assert!((cosine(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-9);
    assert!(cosine(&[1.0, 0.0], &[0.0, 1.0]).abs() < 1e-9);
    assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
}
