//! A small command-line parser: the examples take a handful of `--flag` and `--name value`
//! options, so a dependency would be more code to review than this.

use std::str::FromStr;

use crate::Result;

/// Environment variable that enables validation like `--validation` does.
pub const VALIDATION_ENV: &str = "VKFUSE_EXAMPLE_VALIDATION";

/// Command-line arguments of one example, consumed option by option.
#[derive(Debug)]
pub struct Args {
    rest: Vec<String>,
    /// `--validation` was given or `VKFUSE_EXAMPLE_VALIDATION=1` is set.
    pub validation: bool,
    /// `--help` or `-h` was given.
    pub help: bool,
}

impl Args {
    /// Parses the process arguments (after the program name).
    pub fn from_env() -> Self {
        Self::from_vec(std::env::args().skip(1).collect())
    }

    /// Parses `args` (without the program name). Common flags (`--validation`, `--help`) are
    /// taken out here; the rest waits for [`Args::flag`] and [`Args::value`].
    pub fn from_vec(args: Vec<String>) -> Self {
        let mut this = Self {
            rest: args,
            validation: false,
            help: false,
        };
        let env_validation = std::env::var(VALIDATION_ENV).is_ok_and(|v| v == "1");
        this.validation = this.flag("--validation") || env_validation;
        this.help = this.flag("--help") | this.flag("-h");
        this
    }

    /// Takes every occurrence of the boolean flag `name`; true if there was one.
    pub fn flag(&mut self, name: &str) -> bool {
        let before = self.rest.len();
        self.rest.retain(|a| a != name);
        self.rest.len() != before
    }

    /// Takes the option `name` given as `name value` or `name=value`, parsed as `T`.
    /// The last occurrence wins.
    pub fn value<T>(&mut self, name: &str) -> Result<Option<T>>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        let mut found: Option<String> = None;
        let mut i = 0;
        while i < self.rest.len() {
            if self.rest[i] == name {
                if i + 1 >= self.rest.len() {
                    return Err(format!("option {name} needs a value").into());
                }
                found = Some(self.rest.remove(i + 1));
                self.rest.remove(i);
            } else if let Some(v) = self.rest[i]
                .strip_prefix(name)
                .and_then(|tail| tail.strip_prefix('='))
            {
                found = Some(v.to_owned());
                self.rest.remove(i);
            } else {
                i += 1;
            }
        }
        match found {
            None => Ok(None),
            Some(text) => text
                .parse::<T>()
                .map(Some)
                .map_err(|e| format!("invalid value {text:?} for {name}: {e}").into()),
        }
    }

    /// Fails if any argument was not taken by [`Args::flag`] or [`Args::value`].
    pub fn finish(&self) -> Result<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(format!("unknown argument(s): {} (try --help)", self.rest.join(" ")).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Args {
        Args::from_vec(list.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn flags_and_values() {
        let mut a = args(&["--commands", "10", "--validation", "--ppm=out.ppm", "--x"]);
        assert!(a.validation);
        assert_eq!(a.value::<u32>("--commands").ok().flatten(), Some(10));
        assert_eq!(
            a.value::<String>("--ppm").ok().flatten().as_deref(),
            Some("out.ppm")
        );
        assert!(a.finish().is_err());
        assert!(a.flag("--x"));
        assert!(a.finish().is_ok());
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(args(&["--commands", "ten"])
            .value::<u32>("--commands")
            .is_err());
        assert!(args(&["--commands"]).value::<u32>("--commands").is_err());
        assert_eq!(args(&[]).value::<u32>("--commands").ok().flatten(), None);
    }
}
