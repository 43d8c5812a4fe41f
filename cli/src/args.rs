//! A small command-line parser: long options (`--name`, `--name value`, `--name=value`),
//! positional arguments, and `--` ending the options.

use std::collections::VecDeque;
use std::fmt;

/// Exit code for a usage error (2, as most Unix tools use).
pub const EXIT_USAGE: i32 = 2;
/// Exit code for a failure that is not a usage error.
pub const EXIT_FAILURE: i32 = 1;

/// An error the `vkfuse` command reports on stderr before exiting with `code`.
#[derive(Debug)]
pub struct CliError {
    pub code: i32,
    pub message: String,
}

impl CliError {
    /// Wrong arguments: exit code 2, and a hint to `--help`.
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    /// Anything else that went wrong: exit code 1.
    pub fn failure(message: impl Into<String>) -> Self {
        CliError {
            code: EXIT_FAILURE,
            message: message.into(),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<vkfuse_manifests::Error> for CliError {
    fn from(e: vkfuse_manifests::Error) -> Self {
        CliError::failure(e.to_string())
    }
}

/// One token of the command line.
#[derive(Debug, PartialEq, Eq)]
pub enum Token {
    /// `--name` or `-n` (without the dashes kept: `"--name"`).
    Flag(String),
    /// A positional argument.
    Positional(String),
    /// `--`: everything after it is positional.
    Separator,
}

/// Walks the arguments of one verb.
pub struct Parser {
    args: VecDeque<String>,
    inline_value: Option<String>,
    current: String,
}

impl Parser {
    pub fn new(args: impl IntoIterator<Item = String>) -> Self {
        Parser {
            args: args.into_iter().collect(),
            inline_value: None,
            current: String::new(),
        }
    }

    /// The next token. A value given as `--name=value` is kept for [`Parser::value`].
    pub fn next_token(&mut self) -> Result<Option<Token>, CliError> {
        if let Some(v) = self.inline_value.take() {
            return Err(CliError::usage(format!(
                "option {} takes no value (got '{v}')",
                self.current
            )));
        }
        let Some(arg) = self.args.pop_front() else {
            return Ok(None);
        };
        if arg == "--" {
            return Ok(Some(Token::Separator));
        }
        if arg.starts_with("--") {
            let (name, value) = match arg.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (arg, None),
            };
            self.current = name.clone();
            self.inline_value = value;
            return Ok(Some(Token::Flag(name)));
        }
        if arg.len() > 1 && arg.starts_with('-') {
            self.current = arg.clone();
            return Ok(Some(Token::Flag(arg)));
        }
        Ok(Some(Token::Positional(arg)))
    }

    /// The value of the option just returned by [`Parser::next_token`].
    pub fn value(&mut self) -> Result<String, CliError> {
        if let Some(v) = self.inline_value.take() {
            return Ok(v);
        }
        match self.args.pop_front() {
            Some(v) if !v.starts_with("--") => Ok(v),
            _ => Err(CliError::usage(format!(
                "option {} needs a value",
                self.current
            ))),
        }
    }

    /// The value of the option just returned, parsed as a positive integer.
    pub fn count(&mut self) -> Result<usize, CliError> {
        let v = self.value()?;
        match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(CliError::usage(format!(
                "option {} needs a positive integer (got '{v}')",
                self.current
            ))),
        }
    }

    /// Everything not yet read.
    pub fn rest(&mut self) -> Vec<String> {
        self.args.drain(..).collect()
    }
}

/// The error for an option a verb does not know.
pub fn unknown(verb: &str, token: Token) -> CliError {
    match token {
        Token::Flag(f) => CliError::usage(format!("vkfuse {verb}: unknown option {f}")),
        Token::Positional(p) => {
            CliError::usage(format!("vkfuse {verb}: unexpected argument '{p}'"))
        }
        Token::Separator => CliError::usage(format!("vkfuse {verb}: unexpected '--'")),
    }
}

/// Splits a `--members` list (`a,b` or `a:b`).
pub fn split_list(value: &str) -> Vec<String> {
    value
        .split([',', ':'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser(args: &[&str]) -> Parser {
        Parser::new(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn flags_values_and_separator() {
        let mut p = parser(&[
            "--json",
            "--members=a,b",
            "--strategy",
            "single",
            "--",
            "x",
            "--y",
        ]);
        assert_eq!(p.next_token().unwrap(), Some(Token::Flag("--json".into())));
        assert_eq!(
            p.next_token().unwrap(),
            Some(Token::Flag("--members".into()))
        );
        assert_eq!(p.value().unwrap(), "a,b");
        assert_eq!(
            p.next_token().unwrap(),
            Some(Token::Flag("--strategy".into()))
        );
        assert_eq!(p.value().unwrap(), "single");
        assert_eq!(p.next_token().unwrap(), Some(Token::Separator));
        assert_eq!(p.rest(), vec!["x".to_string(), "--y".to_string()]);
    }

    #[test]
    fn missing_and_unexpected_values() {
        let mut p = parser(&["--strategy"]);
        p.next_token().unwrap();
        assert!(p.value().unwrap_err().message.contains("needs a value"));
        let mut p = parser(&["--json=yes"]);
        p.next_token().unwrap();
        assert!(p
            .next_token()
            .unwrap_err()
            .message
            .contains("takes no value"));
        let mut p = parser(&["--runs", "0"]);
        p.next_token().unwrap();
        assert!(p.count().is_err());
    }

    #[test]
    fn lists() {
        assert_eq!(split_list("lvp, swiftshader"), vec!["lvp", "swiftshader"]);
        assert_eq!(split_list("/a.json:/b.json"), vec!["/a.json", "/b.json"]);
    }
}
