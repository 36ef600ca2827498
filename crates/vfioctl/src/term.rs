//! How output meets the terminal: colour (`--color`, `NO_COLOR`, `CLICOLOR_FORCE`) and the
//! width text is wrapped to.
//!
//! Renderers mark words with a [`Tone`]; the escape codes go into the gathered output, and the
//! stream it is flushed through (anstream's) strips them again unless colour is wanted there.
//! Text from the kernel or the user has its control characters escaped before it is painted, so
//! the only escape sequences that reach a terminal are vfioctl's own.

use anstream::ColorChoice;
use anstyle::{AnsiColor, Style};

/// `--color`: when to colour the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum ColorWhen {
    /// Colour a terminal, unless `NO_COLOR` is set (`CLICOLOR_FORCE` colours a pipe too).
    #[default]
    Auto,
    /// Colour, whatever the stream and the environment say.
    Always,
    /// Never colour.
    Never,
}

impl ColorWhen {
    /// The choice for a stream. An explicit `always` or `never` wins over the environment, as
    /// no-color.org asks of a command-line flag; `auto` leaves it to anstream, which colours only
    /// a terminal and honours `NO_COLOR`, `CLICOLOR`, `CLICOLOR_FORCE` and `TERM=dumb`. A JSON
    /// document is never coloured: scripts parse it.
    pub(crate) fn choice(self, json: bool) -> ColorChoice {
        match self {
            _ if json => ColorChoice::Never,
            Self::Auto => ColorChoice::Auto,
            Self::Always => ColorChoice::AlwaysAnsi,
            Self::Never => ColorChoice::Never,
        }
    }
}

/// What a marked word says, and so its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tone {
    /// A safety rule stands: the command will not do it.
    Refused,
    /// A refusal `--force` overrode, or a warning.
    Warning,
    /// A verdict that the thing is fine (usable, viable, bound).
    Good,
    /// A verdict that it is not.
    Bad,
    /// A heading a block of output starts with.
    Heading,
    /// The hint after an error.
    Hint,
    /// A note on standard error.
    Note,
}

impl Tone {
    fn style(self) -> Style {
        let fg = |c: AnsiColor| Style::new().fg_color(Some(c.into()));
        match self {
            Self::Refused | Self::Bad => fg(AnsiColor::Red).bold(),
            Self::Warning => fg(AnsiColor::Yellow).bold(),
            Self::Good => fg(AnsiColor::Green).bold(),
            Self::Heading => Style::new().bold(),
            Self::Hint => fg(AnsiColor::Cyan),
            Self::Note => fg(AnsiColor::Blue).bold(),
        }
    }
}

/// `text` with its control characters escaped, in `tone`.
pub(crate) fn paint(tone: Tone, text: &str) -> String {
    let style = tone.style();
    format!(
        "{}{}{}",
        style.render(),
        vfioctl_core::escape_controls(text),
        style.render_reset()
    )
}

/// The width when nothing says otherwise: what `ls` assumes for a pipe.
pub(crate) const DEFAULT_WIDTH: usize = 80;

/// Narrower than this and a wrapped line is mostly indentation.
const MIN_WIDTH: usize = 40;

/// The width to wrap to, chosen as `ls` chooses it: `explicit` (`--width`), then `COLUMNS`,
/// then the terminal standard output is, then [`DEFAULT_WIDTH`]. `0` means do not wrap.
pub(crate) fn width(explicit: Option<usize>) -> Option<usize> {
    let chosen = explicit
        .or_else(|| {
            std::env::var("COLUMNS")
                .ok()
                .and_then(|c| c.trim().parse().ok())
        })
        .or_else(|| {
            rustix::termios::tcgetwinsize(std::io::stdout())
                .ok()
                .map(|w| usize::from(w.ws_col))
                .filter(|&c| c > 0)
        })
        .unwrap_or(DEFAULT_WIDTH);
    (chosen != 0).then_some(chosen.max(MIN_WIDTH))
}

/// `text` wrapped to `width` columns (unwrapped when `None`): the first line starts with
/// `first`, the others with `rest`. Words longer than a line (a long path) stay whole.
pub(crate) fn wrap(text: &str, width: Option<usize>, first: &str, rest: &str) -> Vec<String> {
    let Some(width) = width else {
        return vec![format!("{first}{text}")];
    };
    let options = textwrap::Options::new(width)
        .initial_indent(first)
        .subsequent_indent(rest)
        .break_words(false);
    textwrap::wrap(text, options)
        .into_iter()
        .map(std::borrow::Cow::into_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_reason_keeps_its_indent_and_whole_paths() {
        let text = "0000:00:1c.0 is a root port without ACS, so everything behind it \
                    (/sys/bus/pci/devices/0000:00:1c.0/0000:02:00.0) shares its group";
        let lines = wrap(text, Some(40), "  ", "    ");
        assert_eq!(
            lines,
            [
                "  0000:00:1c.0 is a root port without",
                "    ACS, so everything behind it",
                "    (/sys/bus/pci/devices/0000:00:1c.0/0000:02:00.0)",
                "    shares its group",
            ]
        );
        assert_eq!(wrap(text, None, "> ", "").len(), 1);
    }

    #[test]
    fn json_is_never_coloured_and_a_flag_beats_the_environment() {
        assert_eq!(ColorWhen::Always.choice(true), ColorChoice::Never);
        assert_eq!(ColorWhen::Always.choice(false), ColorChoice::AlwaysAnsi);
        assert_eq!(ColorWhen::Never.choice(false), ColorChoice::Never);
        assert_eq!(ColorWhen::Auto.choice(false), ColorChoice::Auto);
    }

    #[test]
    fn painted_text_cannot_smuggle_its_own_escapes() {
        let painted = paint(Tone::Refused, "evil\u{1b}[2J");
        assert_eq!(painted, "\u{1b}[1m\u{1b}[31mevil\\u{1b}[2J\u{1b}[0m");
    }
}
