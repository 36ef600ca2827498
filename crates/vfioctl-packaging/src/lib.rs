//! The Debian `copyright` file of vfioctl's package, in the machine-readable format
//! (<https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/>).
//!
//! The binary statically links every crate it depends on, so the package carries their
//! copyright holders and licences too. The crate list comes from Cargo at build time (see
//! `main.rs`), so a new dependency cannot be shipped without its licence: a licence with no text
//! under `packaging/licenses/` is an error, not a silent omission.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use thiserror::Error;

/// One crate linked into the binary, as `cargo metadata` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crate {
    /// The crate's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its `authors`, possibly empty.
    pub authors: Vec<String>,
    /// Its SPDX `license` expression.
    pub license: Option<String>,
    /// Its `repository` URL.
    pub repository: Option<String>,
}

/// A licence's text for a standalone `License:` paragraph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LicenseText {
    /// The full text (DEP-5 requires it unless Debian ships the licence).
    Full(String),
    /// A licence in `/usr/share/common-licenses/`, named by file.
    Common(&'static str),
    /// A licence exception: the base licence's text plus the exception's.
    Exception {
        /// The base licence, in `/usr/share/common-licenses/`.
        base: &'static str,
        /// The exception's text.
        text: String,
    },
}

/// Why the copyright file cannot be written.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CopyrightError {
    /// A crate declares no SPDX licence.
    #[error(
        "crate {name} {version} declares no licence: add its licence by hand before shipping it"
    )]
    NoLicense {
        /// The crate.
        name: String,
        /// Its version.
        version: String,
    },
    /// A crate's licence has no text to ship.
    #[error(
        "licence {license} (of crate {name}) has no text: add it as packaging/licenses/{license}"
    )]
    UnknownLicense {
        /// The DEP-5 short name.
        license: String,
        /// The first crate that uses it.
        name: String,
    },
}

/// Converts an SPDX licence expression to DEP-5 syntax: `MIT` is `Expat`, the operators are
/// lower case, and `X WITH Y-exception` is `X with Y exception`. The old `/` separator is `or`.
pub fn dep5_license(spdx: &str) -> String {
    let spaced = spdx.replace('/', " OR ");
    let mut out = Vec::new();
    let mut words = spaced.split_whitespace();
    while let Some(word) = words.next() {
        match word {
            "OR" => out.push("or".to_owned()),
            "AND" => out.push("and".to_owned()),
            "WITH" => {
                let exception = words.next().unwrap_or_default();
                let name = exception.strip_suffix("-exception").unwrap_or(exception);
                out.push(format!("with {name} exception"));
            }
            other => out.push(dep5_short_name(other).to_owned()),
        }
    }
    out.join(" ")
}

fn dep5_short_name(spdx: &str) -> &str {
    match spdx {
        "MIT" => "Expat",
        "BSD-3-Clause" => "BSD-3-clause",
        "BSD-2-Clause" => "BSD-2-clause",
        other => other,
    }
}

/// The standalone licence names a DEP-5 expression refers to, exceptions included
/// (`Apache-2.0 with LLVM exception` is one name).
pub fn license_names(dep5: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for word in dep5.split_whitespace() {
        if word == "or" || word == "and" {
            names.push(current.join(" "));
            current.clear();
        } else {
            current.push(word.trim_matches(['(', ')']));
        }
    }
    if !current.is_empty() {
        names.push(current.join(" "));
    }
    names
}

/// Where a licence's text comes from: files under `packaging/licenses/` for the full texts,
/// `/usr/share/common-licenses/` for Apache-2.0.
pub fn license_text(name: &str, read: &dyn Fn(&str) -> Option<String>) -> Option<LicenseText> {
    if name == "Apache-2.0" {
        return Some(LicenseText::Common("Apache-2.0"));
    }
    if let Some(exception) = name.strip_prefix("Apache-2.0 with ") {
        let file = exception.replace(' ', "-");
        return read(&file).map(|text| LicenseText::Exception {
            base: "Apache-2.0",
            text,
        });
    }
    read(name).map(LicenseText::Full)
}

/// The package's own copyright: who holds it, under which licence.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// The project's name.
    pub name: String,
    /// Its copyright line.
    pub copyright: String,
    /// Its SPDX licence.
    pub license: String,
    /// Its source URL, if any.
    pub source: Option<String>,
    /// Files of the project that restate or derive from others' work.
    pub third_party: Vec<ThirdParty>,
}

/// A file of the project under another holder's copyright (an interface definition restated
/// from its upstream), read from `packaging/third-party.json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ThirdParty {
    /// The paths, as a DEP-5 `Files:` pattern.
    pub files: String,
    /// Its holders.
    pub copyright: String,
    /// Its SPDX licence.
    pub license: String,
    /// Where it comes from.
    pub comment: String,
}

/// Renders the copyright file: the project's own `Files: *` paragraph, one paragraph per linked
/// crate (as `cargo vendor` would lay out their sources), and every licence's text once.
pub fn render(
    upstream: &Upstream,
    crates: &[Crate],
    read: &dyn Fn(&str) -> Option<String>,
) -> Result<String, CopyrightError> {
    let mut out = String::new();
    let mut licenses: BTreeMap<String, LicenseText> = BTreeMap::new();
    let own = dep5_license(&upstream.license);
    let mut need = |dep5: &str, crate_name: &str| -> Result<(), CopyrightError> {
        for name in license_names(dep5) {
            if licenses.contains_key(&name) {
                continue;
            }
            let text = license_text(&name, read).ok_or_else(|| CopyrightError::UnknownLicense {
                license: name.replace("Apache-2.0 with ", "").replace(' ', "-"),
                name: crate_name.to_owned(),
            })?;
            licenses.insert(name, text);
        }
        Ok(())
    };
    need(&own, &upstream.name)?;
    let _ = writeln!(
        out,
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    );
    let _ = writeln!(out, "Upstream-Name: {}", upstream.name);
    if let Some(source) = &upstream.source {
        let _ = writeln!(out, "Source: {source}");
    }
    let _ = writeln!(
        out,
        "Comment: /usr/bin/{} statically links the Rust crates listed below; their sources are\n \
         named as `cargo vendor` lays them out (vendor/NAME-VERSION).",
        upstream.name
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "Files: *");
    let _ = writeln!(out, "Copyright: {}", upstream.copyright);
    let _ = writeln!(out, "License: {own}");
    for file in &upstream.third_party {
        let dep5 = dep5_license(&file.license);
        need(&dep5, &file.files)?;
        let _ = writeln!(out);
        let _ = writeln!(out, "Files: {}", file.files);
        let _ = writeln!(out, "Copyright: {}", file.copyright);
        let _ = writeln!(out, "License: {dep5}");
        let _ = writeln!(out, "Comment: {}", file.comment);
    }
    for krate in crates {
        let spdx = krate
            .license
            .as_deref()
            .ok_or_else(|| CopyrightError::NoLicense {
                name: krate.name.clone(),
                version: krate.version.clone(),
            })?;
        let dep5 = dep5_license(spdx);
        need(&dep5, &krate.name)?;
        let _ = writeln!(out);
        let _ = writeln!(out, "Files: vendor/{}-{}/*", krate.name, krate.version);
        let holders = if krate.authors.is_empty() {
            vec![format!("the {} authors", krate.name)]
        } else {
            krate.authors.clone()
        };
        let _ = writeln!(out, "Copyright: {}", holders.join("\n "));
        let _ = writeln!(out, "License: {dep5}");
        if let Some(repository) = &krate.repository {
            let _ = writeln!(out, "Comment: {repository}");
        }
    }
    for (name, text) in &licenses {
        let _ = writeln!(out);
        let _ = writeln!(out, "License: {name}");
        match text {
            LicenseText::Full(text) => push_text(&mut out, text),
            LicenseText::Common(file) => common(&mut out, name, file),
            LicenseText::Exception { base, text } => {
                common(&mut out, base, base);
                let _ = writeln!(out, " .");
                push_text(&mut out, text);
            }
        }
    }
    Ok(out)
}

fn common(out: &mut String, name: &str, file: &str) {
    let _ = writeln!(
        out,
        " On Debian systems, the complete text of the {name} licence is in\n \
         /usr/share/common-licenses/{file}."
    );
}

/// A licence text as DEP-5 continuation lines: one space before each line, ` .` for blank ones.
fn push_text(out: &mut String, text: &str) {
    for line in text.trim_end().lines() {
        if line.trim().is_empty() {
            out.push_str(" .\n");
        } else {
            out.push(' ');
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spdx_becomes_dep5() {
        assert_eq!(dep5_license("MIT OR Apache-2.0"), "Expat or Apache-2.0");
        assert_eq!(dep5_license("MIT/Apache-2.0"), "Expat or Apache-2.0");
        assert_eq!(
            dep5_license("Apache-2.0 WITH LLVM-exception OR Apache-2.0 OR MIT"),
            "Apache-2.0 with LLVM exception or Apache-2.0 or Expat"
        );
        assert_eq!(
            license_names("Apache-2.0 with LLVM exception or Apache-2.0 or Expat"),
            ["Apache-2.0 with LLVM exception", "Apache-2.0", "Expat"]
        );
    }

    fn krate(name: &str, license: Option<&str>, authors: &[&str]) -> Crate {
        Crate {
            name: name.to_owned(),
            version: "1.0.0".to_owned(),
            authors: authors.iter().map(|a| (*a).to_owned()).collect(),
            license: license.map(str::to_owned),
            repository: Some(format!("https://example.org/{name}")),
        }
    }

    fn upstream() -> Upstream {
        Upstream {
            third_party: Vec::new(),
            name: "vfioctl".to_owned(),
            copyright: "2026 vfioctl developers".to_owned(),
            license: "MIT OR Apache-2.0".to_owned(),
            source: None,
        }
    }

    fn texts(name: &str) -> Option<String> {
        matches!(name, "Expat" | "LLVM-exception" | "Unlicense")
            .then(|| format!("The {name} text.\n\nSecond paragraph.\n"))
    }

    #[test]
    fn a_third_party_file_gets_its_own_paragraph_and_licence() {
        let mut up = upstream();
        up.third_party.push(ThirdParty {
            files: "crates/x/proto/api.proto".to_owned(),
            copyright: "The Kubernetes Authors".to_owned(),
            license: "Apache-2.0".to_owned(),
            comment: "restates an interface".to_owned(),
        });
        let text = render(&up, &[], &texts).expect("renders");
        assert!(
            text.contains(
                "Files: crates/x/proto/api.proto\nCopyright: The Kubernetes Authors\n\
                 License: Apache-2.0\nComment: restates an interface\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("\nLicense: Apache-2.0\n On Debian systems"),
            "{text}"
        );
    }

    #[test]
    fn renders_each_crate_and_each_licence_once() {
        let crates = [
            krate(
                "rustix",
                Some("Apache-2.0 WITH LLVM-exception OR Apache-2.0 OR MIT"),
                &[
                    "Dan Gohman <dev@sunfishcode.online>",
                    "Jakub Konka <kubkon@jakubkonka.com>",
                ],
            ),
            krate("memchr", Some("Unlicense OR MIT"), &[]),
            krate("strsim", Some("MIT"), &["Danny Guo"]),
        ];
        insta::assert_snapshot!(render(&upstream(), &crates, &texts).expect("renders"));
    }

    #[test]
    fn a_licence_without_text_or_a_crate_without_licence_is_an_error() {
        let crates = [krate("odd", Some("MPL-2.0"), &[])];
        assert_eq!(
            render(&upstream(), &crates, &texts)
                .expect_err("no MPL text")
                .to_string(),
            "licence MPL-2.0 (of crate odd) has no text: add it as packaging/licenses/MPL-2.0"
        );
        let crates = [krate("bare", None, &[])];
        assert!(matches!(
            render(&upstream(), &crates, &texts),
            Err(CopyrightError::NoLicense { .. })
        ));
    }
}
