//! Keys as data: every binding has a description, and the help overlay is generated from
//! this table. Bindings may be scoped to one view (the same key can mean "start" in
//! Services and "choose service" in Logs); `[console.keys]` in the settings file
//! overrides the key of any action by name.

use std::collections::BTreeMap;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::action::{Action, View};

/// A key with its modifiers, as written in the settings file: `q`, `R`, `ctrl-c`,
/// `tab`, `shift-tab`, `enter`, `esc`, `up`, `down`, `pgup`, `pgdn`, `home`, `end`, `f1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Chord {
    pub code: KeyCode,
    pub ctrl: bool,
}

impl Chord {
    pub fn from_event(k: &KeyEvent) -> Chord {
        // Terminals send Shift-Tab as BackTab and upper-case letters as themselves, so
        // SHIFT needs no field of its own.
        Chord {
            code: k.code,
            ctrl: k.modifiers.contains(KeyModifiers::CONTROL),
        }
    }

    pub fn parse(s: &str) -> Result<Chord, String> {
        let (ctrl, rest) = match s.strip_prefix("ctrl-") {
            Some(r) => (true, r),
            None => (false, s),
        };
        let code = match rest {
            "tab" => KeyCode::Tab,
            "shift-tab" | "backtab" => KeyCode::BackTab,
            "enter" => KeyCode::Enter,
            "esc" => KeyCode::Esc,
            "space" => KeyCode::Char(' '),
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "pgup" => KeyCode::PageUp,
            "pgdn" => KeyCode::PageDown,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            f if f.len() >= 2 && f.starts_with('f') && f[1..].parse::<u8>().is_ok() => {
                KeyCode::F(f[1..].parse().unwrap_or(1))
            }
            c if c.chars().count() == 1 => KeyCode::Char(c.chars().next().unwrap_or(' ')),
            _ => {
                return Err(format!(
                    "{s:?} is not a key: use one character (`R`), `ctrl-x`, or one of tab, \
                     shift-tab, enter, esc, space, up, down, left, right, pgup, pgdn, home, \
                     end, f1..f12"
                ));
            }
        };
        Ok(Chord { code, ctrl })
    }

    pub fn label(&self) -> String {
        let k = match self.code {
            KeyCode::Char(' ') => "space".to_string(),
            KeyCode::Char(c) => c.to_string(),
            KeyCode::Tab => "Tab".into(),
            KeyCode::BackTab => "S-Tab".into(),
            KeyCode::Enter => "Enter".into(),
            KeyCode::Esc => "Esc".into(),
            KeyCode::Up => "↑".into(),
            KeyCode::Down => "↓".into(),
            KeyCode::Left => "←".into(),
            KeyCode::Right => "→".into(),
            KeyCode::PageUp => "PgUp".into(),
            KeyCode::PageDown => "PgDn".into(),
            KeyCode::Home => "Home".into(),
            KeyCode::End => "End".into(),
            KeyCode::F(n) => format!("F{n}"),
            _ => "?".into(),
        };
        if self.ctrl { format!("C-{k}") } else { k }
    }
}

#[derive(Debug, Clone)]
pub struct Binding {
    pub chord: Chord,
    pub action: Action,
    /// None: every view.
    pub view: Option<View>,
    /// The name used in `[console.keys]`.
    pub name: &'static str,
    pub description: &'static str,
}

#[derive(Debug, Clone)]
pub struct Keymap {
    pub bindings: Vec<Binding>,
}

fn ch(c: char) -> Chord {
    Chord {
        code: KeyCode::Char(c),
        ctrl: false,
    }
}

fn code(c: KeyCode) -> Chord {
    Chord {
        code: c,
        ctrl: false,
    }
}

impl Default for Keymap {
    fn default() -> Self {
        use Action::*;
        use View::*;
        let g = |chord, action, name, description| Binding {
            chord,
            action,
            view: None,
            name,
            description,
        };
        let v = |view, chord, action, name, description| Binding {
            chord,
            action,
            view: Some(view),
            name,
            description,
        };
        let mut b = vec![
            g(ch('q'), Quit, "quit", "quit (the stack keeps running)"),
            g(
                Chord {
                    code: KeyCode::Char('c'),
                    ctrl: true,
                },
                Quit,
                "quit_ctrl_c",
                "quit",
            ),
            g(ch('?'), Help, "help", "this help"),
            g(code(KeyCode::Tab), NextView, "next_view", "next view"),
            g(
                code(KeyCode::BackTab),
                PrevView,
                "prev_view",
                "previous view",
            ),
        ];
        for (i, view) in View::ALL.iter().enumerate() {
            b.push(g(
                ch(char::from(b'1' + i as u8)),
                Goto(*view),
                view.key_name(),
                view.title(),
            ));
        }
        b.extend([
            g(ch('j'), Down, "down", "move down"),
            g(code(KeyCode::Down), Down, "down_arrow", "move down"),
            g(ch('k'), Up, "up", "move up"),
            g(code(KeyCode::Up), Up, "up_arrow", "move up"),
            g(ch('g'), Top, "top", "first line"),
            g(code(KeyCode::Home), Top, "top_home", "first line"),
            g(ch('G'), Bottom, "bottom", "last line"),
            g(code(KeyCode::End), Bottom, "bottom_end", "last line"),
            g(code(KeyCode::PageDown), PageDown, "page_down", "page down"),
            g(
                Chord {
                    code: KeyCode::Char('d'),
                    ctrl: true,
                },
                PageDown,
                "page_down_ctrl",
                "page down",
            ),
            g(code(KeyCode::PageUp), PageUp, "page_up", "page up"),
            g(
                Chord {
                    code: KeyCode::Char('u'),
                    ctrl: true,
                },
                PageUp,
                "page_up_ctrl",
                "page up",
            ),
            g(
                ch('/'),
                Filter,
                "filter",
                "filter the list (search in Logs)",
            ),
            g(
                code(KeyCode::Esc),
                Cancel,
                "cancel",
                "clear the filter, close popups",
            ),
            g(
                code(KeyCode::Enter),
                Open,
                "open",
                "open the row's whole text",
            ),
            g(
                ch('m'),
                ShowStatus,
                "show_status",
                "the status line in full",
            ),
            g(ch('U'), StackUp, "stack_up", "bring the whole stack up"),
            g(
                ch('['),
                SampleFaster,
                "sample_faster",
                "sample more often (down to every 0.5 s)",
            ),
            g(
                ch(']'),
                SampleSlower,
                "sample_slower",
                "sample less often (up to every 10 s)",
            ),
            g(
                ch('D'),
                StackDown,
                "stack_down",
                "take the whole stack down (asks)",
            ),
            v(Services, ch('s'), Start, "start", "start the service"),
            v(Services, ch('x'), Stop, "stop", "stop the service (asks)"),
            v(
                Services,
                ch('r'),
                Restart,
                "restart",
                "restart the service (asks)",
            ),
            v(
                Services,
                ch('+'),
                ScaleUp,
                "scale_up",
                "one more replica (asks)",
            ),
            v(
                Services,
                ch('-'),
                ScaleDown,
                "scale_down",
                "one replica less (asks)",
            ),
            v(
                Services,
                ch('d'),
                Dependencies,
                "dependencies",
                "dependency view on/off",
            ),
            v(Services, ch('e'), Shell, "shell", "shell in the container"),
            v(
                Services,
                ch('i'),
                Inspect,
                "inspect",
                "inspect the container",
            ),
            v(Services, ch('o'), Sort, "sort", "sort: name, CPU, memory"),
            v(
                Services,
                ch('l'),
                OpenLogs,
                "service_logs",
                "this service's logs",
            ),
            v(
                Gpu,
                ch('p'),
                Probe,
                "probe",
                "run the Ollama tokens/s probe",
            ),
            v(
                Gpu,
                ch('w'),
                Warm,
                "warm",
                "load the selected model with Ollama's keep-alive",
            ),
            v(
                Gpu,
                ch('u'),
                Unload,
                "unload",
                "unload the selected model now",
            ),
            v(
                Gpu,
                ch('P'),
                Pin,
                "pin",
                "keep the selected model loaded until Ollama stops",
            ),
            v(
                Agents,
                ch('r'),
                Replicas,
                "replicas",
                "one row per gateway replica under each merged row, on/off",
            ),
            v(
                Agents,
                ch('p'),
                Probe,
                "probe_agent",
                "tokens/s probe of the selected agent's model",
            ),
            v(
                Suggestions,
                ch('a'),
                Apply,
                "apply",
                "apply the suggestion (asks)",
            ),
            v(
                Suggestions,
                ch('y'),
                Copy,
                "copy_suggestion",
                "copy its command (OSC 52)",
            ),
            v(
                Logs,
                ch('y'),
                Copy,
                "copy_line",
                "copy the selected line (OSC 52)",
            ),
            v(Logs, ch('n'), SearchNext, "search_next", "next match"),
            v(Logs, ch('N'), SearchPrev, "search_prev", "previous match"),
            v(Logs, ch('f'), Follow, "follow", "follow new lines on/off"),
            v(Logs, ch('w'), Wrap, "wrap", "wrap long lines on/off"),
            v(Logs, ch('t'), Timestamps, "timestamps", "timestamps on/off"),
            v(
                Logs,
                ch('h'),
                ScrollLeft,
                "scroll_left",
                "scroll left (wrap off)",
            ),
            v(
                Logs,
                code(KeyCode::Left),
                ScrollLeft,
                "scroll_left_arrow",
                "scroll left (wrap off)",
            ),
            v(
                Logs,
                ch('l'),
                ScrollRight,
                "scroll_right",
                "scroll right (wrap off)",
            ),
            v(
                Logs,
                code(KeyCode::Right),
                ScrollRight,
                "scroll_right_arrow",
                "scroll right (wrap off)",
            ),
            v(
                Logs,
                ch('&'),
                LogFilter,
                "log_filter",
                "show only lines containing…",
            ),
            v(
                Logs,
                ch('s'),
                LogService,
                "log_service",
                "next service (all merged first)",
            ),
        ]);
        // The fleet's lines on the Overview (`[[fleet]]` in the settings file).
        b.extend([
            v(
                Overview,
                code(KeyCode::Enter),
                SwitchHost,
                "fleet_switch",
                "switch the console to the selected fleet host's stack (here: back home)",
            ),
            v(
                Overview,
                ch('i'),
                Open,
                "fleet_open",
                "the selected fleet host: its figures, its containers, how to attach",
            ),
        ]);
        Keymap { bindings: b }
    }
}

impl Keymap {
    /// The default keymap with `[console.keys]` applied; errors name the key and say how
    /// to fix it (`origin` is the settings file).
    pub fn with_overrides(keys: &BTreeMap<String, String>, origin: &str) -> Result<Keymap, String> {
        let mut map = Keymap::default();
        for (name, key) in keys {
            let chord =
                Chord::parse(key).map_err(|e| format!("{origin}: console.keys.{name}: {e}"))?;
            let mut found = false;
            for b in map.bindings.iter_mut().filter(|b| b.name == name) {
                b.chord = chord;
                found = true;
            }
            if !found {
                let names: Vec<&str> = map.bindings.iter().map(|b| b.name).collect();
                return Err(format!(
                    "{origin}: console.keys.{name}: no such action; actions are: {}",
                    names.join(", ")
                ));
            }
        }
        Ok(map)
    }

    /// The action of `key` in `view`: a binding of that view beats a global one.
    pub fn lookup(&self, view: View, key: &KeyEvent) -> Option<Action> {
        let c = Chord::from_event(key);
        let hit = |scoped: bool| {
            self.bindings
                .iter()
                .find(|b| {
                    b.chord == c
                        && (if scoped {
                            b.view == Some(view)
                        } else {
                            b.view.is_none()
                        })
                })
                .map(|b| b.action)
        };
        hit(true).or_else(|| hit(false))
    }

    /// The first key bound to `action` in `view` (for hints).
    pub fn key_for(&self, view: View, action: Action) -> Option<String> {
        self.bindings
            .iter()
            .find(|b| b.action == action && (b.view.is_none() || b.view == Some(view)))
            .map(|b| b.chord.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
    }

    #[test]
    fn scoped_bindings_beat_global_ones_and_overrides_apply() {
        let m = Keymap::default();
        assert_eq!(m.lookup(View::Services, &key('s')), Some(Action::Start));
        assert_eq!(m.lookup(View::Logs, &key('s')), Some(Action::LogService));
        assert_eq!(m.lookup(View::Overview, &key('s')), None);
        assert_eq!(
            m.lookup(View::Overview, &key('3')),
            Some(Action::Goto(View::Agents))
        );
        let keys = BTreeMap::from([("restart".to_string(), "R".to_string())]);
        let m = Keymap::with_overrides(&keys, "osmen.toml").unwrap();
        assert_eq!(m.lookup(View::Services, &key('R')), Some(Action::Restart));
        assert_eq!(m.lookup(View::Services, &key('r')), None);
    }

    #[test]
    fn bad_overrides_name_the_key() {
        let keys = BTreeMap::from([("restartt".to_string(), "R".to_string())]);
        let e = Keymap::with_overrides(&keys, "osmen.toml").unwrap_err();
        assert!(
            e.starts_with("osmen.toml: console.keys.restartt: no such action"),
            "{e}"
        );
        let keys = BTreeMap::from([("restart".to_string(), "hyper-r".to_string())]);
        let e = Keymap::with_overrides(&keys, "osmen.toml").unwrap_err();
        assert!(e.contains("\"hyper-r\" is not a key"), "{e}");
        assert_eq!(Chord::parse("ctrl-x").unwrap().label(), "C-x");
        assert_eq!(Chord::parse("f5").unwrap().code, KeyCode::F(5));
    }
}
