//! Which modules could drive a device: its `modalias` matched against `modules.alias`, as
//! `modprobe` and `lspci -k`'s "Kernel modules" line do.
//!
//! A line of `modules.alias` is `alias PATTERN MODULE`, PATTERN a shell glob (`*`, `?`, `[...]`)
//! that `depmod` took from the module's device table, e.g.
//! `alias pci:v00008086d00001533sv*sd*bc*sc*i* igb`. A device's `modalias` attribute is the
//! string those patterns are matched against (`pci:v00008086d00001533sv00008086sd00000000bc02sc00i00`).

use glob::{MatchOptions, Pattern};

/// The aliases of one `modules.alias` (or `modules.builtin.alias`) file.
#[derive(Debug, Default)]
pub struct AliasTable {
    aliases: Vec<(Pattern, String)>,
}

impl AliasTable {
    /// Parses the text of an alias file. Lines that are not `alias PATTERN MODULE`, or whose
    /// pattern is not a glob, are skipped: `modprobe` skips them too.
    pub fn parse(text: &str) -> Self {
        let aliases = text
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                if words.next() != Some("alias") {
                    return None;
                }
                let pattern = Pattern::new(words.next()?).ok()?;
                Some((pattern, words.next()?.to_owned()))
            })
            .collect();
        Self { aliases }
    }

    /// Adds the aliases of `other` (built-in modules after loadable ones).
    pub fn extend(&mut self, other: Self) {
        self.aliases.extend(other.aliases);
    }

    /// The modules whose aliases match `modalias`, in the order of the file, each once.
    pub fn modules_for(&self, modalias: &str) -> Vec<String> {
        // modprobe matches with fnmatch(3) and no flags: `*` crosses every character.
        let options = MatchOptions {
            case_sensitive: true,
            require_literal_separator: false,
            require_literal_leading_dot: false,
        };
        let mut out: Vec<String> = Vec::new();
        for (pattern, module) in &self.aliases {
            if pattern.matches_with(modalias, options) && !out.contains(module) {
                out.push(module.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALIAS: &str = "\
# Aliases extracted from modules themselves.
alias pci:v00008086d00001533sv*sd*bc*sc*i* igb
alias pci:v*d*sv*sd*bc03sc*i* vfio_pci_core_stub
alias pci:v000010DEd*sv*sd*bc03sc00i00 nouveau
alias pci:v000010DEd*sv*sd*bc03sc0[02]i00 nvidia
alias usb:v1D6Bp0002d*dc*dsc*dp*ic*isc*ip*in* hub
alias pci:v000010DEd*sv*sd*bc03sc*i* nouveau
not an alias line
";

    #[test]
    fn every_matching_module_is_listed_once_in_file_order() {
        let table = AliasTable::parse(ALIAS);
        let gpu = "pci:v000010DEd00002684sv00001458sd00004104bc03sc00i00";
        assert_eq!(
            table.modules_for(gpu),
            ["vfio_pci_core_stub", "nouveau", "nvidia"]
        );
        let nic = "pci:v00008086d00001533sv00008086sd00000000bc02sc00i00";
        assert_eq!(table.modules_for(nic), ["igb"]);
        assert!(table.modules_for("pci:v00001AC1d0000089Asv*").is_empty());
    }

    #[test]
    fn built_in_aliases_follow_the_loadable_ones() {
        let mut table = AliasTable::parse("alias pci:v00008086d*sv*sd*bc0Csc05i* i2c_i801\n");
        table.extend(AliasTable::parse(
            "alias pci:v*d*sv*sd*bc0Csc05i* smbus_builtin\n",
        ));
        assert_eq!(
            table.modules_for("pci:v00008086d0000A323sv00001458sd00005001bc0Csc05i00"),
            ["i2c_i801", "smbus_builtin"]
        );
    }
}
