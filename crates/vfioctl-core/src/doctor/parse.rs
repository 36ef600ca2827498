//! Readers for the text `doctor` gets from the host: `/proc/cmdline`, modprobe.d files and the
//! kernel release. They only parse; the checks decide what the values mean.

/// One directive of a modprobe.d file that `doctor` cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Directive {
    /// `blacklist <module>`: no loading through aliases (udev); `modprobe <module>` still works.
    Blacklist {
        /// The module (canonical, `_` for `-`).
        module: String,
    },
    /// `install <module> <command>`: modprobe runs the command instead of loading the module.
    Install {
        /// The module (canonical).
        module: String,
        /// The command.
        command: String,
    },
    /// `options <module> <params>`.
    Options {
        /// The module (canonical).
        module: String,
        /// `name=value` pairs, names canonical.
        params: Vec<(String, String)>,
    },
}

/// A directive and where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModprobeEntry {
    /// The file, as on `/`.
    pub path: String,
    /// 1-based line where the directive starts.
    pub line: usize,
    /// The directive.
    pub directive: Directive,
    /// The line as written (continuations joined).
    pub text: String,
}

/// Canonical module or parameter name: the kernel treats `-` and `_` alike.
pub fn canonical(name: &str) -> String {
    name.replace('-', "_")
}

/// The name users type for a module (`vfio-pci`): underscores as dashes.
pub fn dashed(name: &str) -> String {
    name.replace('_', "-")
}

/// Parses one modprobe.d file (`modprobe.d(5)`): `#` comments, `\` continuations, and the
/// `blacklist`, `install` and `options` directives; everything else is skipped.
pub fn parse_modprobe_conf(path: &str, text: &str) -> Vec<ModprobeEntry> {
    let mut entries = Vec::new();
    let mut pending = String::new();
    let mut start = 0;
    for (index, raw) in text.lines().enumerate() {
        if pending.is_empty() {
            start = index + 1;
        }
        if let Some(body) = raw.strip_suffix('\\') {
            pending.push_str(body);
            pending.push(' ');
            continue;
        }
        pending.push_str(raw);
        let line = std::mem::take(&mut pending);
        let trimmed = line.trim();
        if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        let mut words = trimmed.split_whitespace();
        let (Some(command), Some(module)) = (words.next(), words.next()) else {
            continue;
        };
        let module = canonical(module);
        let directive = match command {
            "blacklist" => Directive::Blacklist { module },
            "install" => Directive::Install {
                module,
                command: words.collect::<Vec<_>>().join(" "),
            },
            "options" => Directive::Options {
                module,
                params: words
                    .map(|w| match w.split_once('=') {
                        Some((k, v)) => (canonical(k), v.trim_matches('"').to_owned()),
                        None => (canonical(w), String::new()),
                    })
                    .collect(),
            },
            _ => continue,
        };
        entries.push(ModprobeEntry {
            path: path.to_owned(),
            line: start,
            directive,
            text: trimmed.to_owned(),
        });
    }
    entries
}

/// A kernel command-line parameter: name (canonical: `-` as `_`) and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Canonical name (`vfio_pci.ids`).
    pub name: String,
    /// Value, empty when the parameter has none.
    pub value: String,
    /// As written.
    pub text: String,
}

/// Splits `/proc/cmdline` into parameters the way the kernel does (quotes group, `--` ends the
/// kernel's part).
pub fn parse_cmdline(cmdline: &str) -> Vec<Param> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in cmdline.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
        .into_iter()
        .take_while(|w| w != "--")
        .map(|w| {
            let (name, value) = w.split_once('=').unwrap_or((w.as_str(), ""));
            Param {
                name: canonical(name),
                value: value.to_owned(),
                text: w.clone(),
            }
        })
        .collect()
}

/// `major.minor` of a kernel release such as `6.8.0-45-generic`.
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_and_modprobe_parsers() {
        let p = parse_cmdline("a=1 vfio-pci.ids=10de:2684,10de:22ba \"x=y z\" -- init=2");
        assert_eq!(p[1].name, "vfio_pci.ids");
        assert_eq!(p[1].value, "10de:2684,10de:22ba");
        assert_eq!(p[2].value, "y z");
        assert_eq!(p.len(), 3);
        let e = parse_modprobe_conf(
            "/etc/modprobe.d/x.conf",
            "# c\nblacklist vfio-pci\noptions vfio_pci \\\n  ids=1b4b:9230 disable_idle_d3=1\n",
        );
        assert_eq!(e.len(), 2);
        assert_eq!(
            e[0].directive,
            Directive::Blacklist {
                module: "vfio_pci".into()
            }
        );
        assert_eq!(e[1].line, 3);
        assert!(matches!(&e[1].directive, Directive::Options { params, .. } if params.len() == 2));
    }
}
