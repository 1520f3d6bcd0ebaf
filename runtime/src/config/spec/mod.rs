//! The declarative configuration: one [`Var`] per environment variable (name, default, doc,
//! readers). Parsing takes its defaults from here, the typo guard its names, and
//! `.env.example` is this table rendered ([`env_example`]).

use std::path::PathBuf;

use ipm_policy::secret::Secret;

use super::{ConfigError, Env, ListenAddr, invalid, read_secret};

mod api;
mod authz;
mod example;
mod guard;
mod shared;

pub use api::*;
pub use authz::*;
pub use example::env_example;
pub use guard::{OWNED_PREFIXES, reject_unknown};
pub use shared::*;

/// Every variable, by topic, in the order `.env.example` lists them.
pub static SECTIONS: &[Section] = &[
    shared::SECRET,
    shared::HEADERS,
    shared::MODES,
    shared::POLICIES,
    shared::DIRECTORY,
    shared::CACHE,
    shared::LOGS,
    authz::AUTHZ,
    authz::AUTHZEN,
    authz::ADMIN,
    api::API,
    api::IMAGES,
];

/// Every variable, in `.env.example` order.
pub fn all() -> impl Iterator<Item = &'static dyn AnyVar> {
    SECTIONS.iter().flat_map(|s| s.vars.iter().copied())
}

/// The variable called `name`, if ipm reads one.
pub fn find(name: &str) -> Option<&'static dyn AnyVar> {
    all().find(|v| v.name() == name)
}

/// One of ipm's binaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    Authz,
    Api,
}

impl Program {
    /// The binary's name, as messages show it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Authz => "authz",
            Self::Api => "ipm-api",
        }
    }
}

/// Which binaries read a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readers {
    Authz,
    Api,
    Both,
}

impl Readers {
    pub fn include(self, program: Program) -> bool {
        matches!(
            (self, program),
            (Self::Both, _) | (Self::Authz, Program::Authz) | (Self::Api, Program::Api)
        )
    }
}

/// The default of a variable that has none: unset unless the deployer sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unset;

/// A group of variables: one `# --- title ---` block of `.env.example`.
pub struct Section {
    pub title: &'static str,
    pub vars: &'static [&'static dyn AnyVar],
}

/// One environment variable. `T` is the type of its default: `bool`, a number, `&str`, or
/// [`Unset`]; the accessors below read it with the default applied.
#[derive(Debug, Clone, Copy)]
pub struct Var<T: 'static> {
    pub name: &'static str,
    pub default: T,
    /// What it does, as `.env.example` shows it (several lines allowed).
    pub doc: &'static str,
    pub readers: Readers,
    /// A credential: its value is never shown or echoed in a refusal.
    pub secret: bool,
    /// The value `.env.example` shows when there is no default.
    pub example: Option<&'static str>,
    /// `.env.example` shows the line commented out.
    pub commented: bool,
}

impl<T: Copy> Var<T> {
    /// A variable with a default; `.env.example` sets it to that default.
    pub const fn new(name: &'static str, readers: Readers, default: T, doc: &'static str) -> Self {
        Self {
            name,
            default,
            doc,
            readers,
            secret: false,
            example: None,
            commented: false,
        }
    }

    pub const fn secret(self) -> Self {
        Self {
            secret: true,
            ..self
        }
    }

    /// Shows `value` in `.env.example` (commented out unless [`Var::set_in_example`]).
    pub const fn example(self, value: &'static str) -> Self {
        Self {
            example: Some(value),
            ..self
        }
    }

    /// Shows the line set, not commented out: for the placeholder secret, which must be
    /// replaced before anything starts.
    pub const fn set_in_example(self) -> Self {
        Self {
            commented: false,
            ..self
        }
    }
}

impl Var<Unset> {
    /// A variable without a default; `.env.example` shows it commented out.
    pub const fn unset(name: &'static str, readers: Readers, doc: &'static str) -> Self {
        Self {
            commented: true,
            ..Self::new(name, readers, Unset, doc)
        }
    }
}

// === Reading a variable ===

impl<T> Var<T> {
    /// The value as set, trimmed; `None` when unset or blank.
    pub fn raw<'a>(&self, env: &'a Env) -> Option<&'a str> {
        env.get(self.name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// A refusal that names this variable.
    pub fn invalid(&self, message: impl Into<String>) -> ConfigError {
        invalid(self.name, message)
    }

    /// A refusal for `value`, which is shown unless the variable is secret.
    fn rejected(&self, value: &str, expected: &str) -> ConfigError {
        if self.secret {
            self.invalid(format!("the value is not {expected}"))
        } else {
            self.invalid(format!("`{value}` is not {expected}"))
        }
    }
}

impl Var<&'static str> {
    /// The value, or the default when unset or blank.
    pub fn value<'a>(&self, env: &'a Env) -> &'a str {
        self.raw(env).unwrap_or(self.default)
    }

    /// The value, the default when unset, `None` when set blank (blank turns it off).
    pub fn value_or_off<'a>(&self, env: &'a Env) -> Option<&'a str> {
        match env.get(self.name) {
            None => Some(self.default),
            Some(_) => self.raw(env),
        }
    }

    /// The value in lower case, for variables that take one of a few words.
    pub fn choice(&self, env: &Env) -> String {
        self.value(env).to_ascii_lowercase()
    }

    pub fn path(&self, env: &Env) -> PathBuf {
        PathBuf::from(self.value(env))
    }

    /// An `IP:PORT` or `unix:/path` address.
    pub fn listen(&self, env: &Env) -> Result<ListenAddr, ConfigError> {
        self.value(env).parse().map_err(|m: String| self.invalid(m))
    }

    /// A header name (an HTTP token), in lower case; blank means the default.
    pub fn header(&self, env: &Env) -> Result<String, ConfigError> {
        self.header_name(self.value(env))
    }

    /// A header name (an HTTP token), in lower case; `None` when set blank.
    pub fn header_or_off(&self, env: &Env) -> Result<Option<String>, ConfigError> {
        self.value_or_off(env)
            .map(|v| self.header_name(v))
            .transpose()
    }

    fn header_name(&self, v: &str) -> Result<String, ConfigError> {
        let ok = !v.is_empty()
            && v.len() <= 64
            && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return Err(self.invalid(format!(
                "`{v}` is not a header name (letters, digits and `-`)"
            )));
        }
        Ok(v.to_ascii_lowercase())
    }
}

/// A default type that a variable's text is parsed into: `bool` or a number.
pub trait Parsed: Copy + Sized {
    /// What the text must be, for the refusal.
    const EXPECTED: &'static str;
    fn parse_text(text: &str) -> Option<Self>;
}

impl Parsed for bool {
    const EXPECTED: &'static str = "true or false";

    /// `true/false/1/0/yes/no/on/off`; anything else is refused rather than guessed.
    fn parse_text(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" => Some(false),
            _ => None,
        }
    }
}

macro_rules! parsed_number {
    ($($t:ty),*) => {$(
        impl Parsed for $t {
            const EXPECTED: &'static str = "a number";

            fn parse_text(text: &str) -> Option<Self> {
                text.parse().ok()
            }
        }
    )*};
}

parsed_number!(u32, u64, usize);

impl<T: Parsed> Var<T> {
    /// The value, or the default when unset or blank.
    pub fn get(&self, env: &Env) -> Result<T, ConfigError> {
        self.get_or(env, self.default)
    }
}

impl<T> Var<T> {
    /// The value, or `default` when unset or blank: for a default that depends on other
    /// variables (`DB_AUTO_MIGRATE`).
    pub fn get_or<P: Parsed>(&self, env: &Env, default: P) -> Result<P, ConfigError> {
        match self.raw(env) {
            None => Ok(default),
            Some(v) => P::parse_text(v).ok_or_else(|| self.rejected(v, P::EXPECTED)),
        }
    }
}

impl Var<Unset> {
    /// The secret from this variable or from the file `file` names, never both.
    pub fn secret_value(
        &self,
        env: &Env,
        file: &Var<Unset>,
    ) -> Result<Option<Secret>, ConfigError> {
        read_secret(env, self.name, file.name)
    }

    /// Refuses the configuration for lack of this variable.
    pub fn missing(&self, why: &'static str) -> ConfigError {
        ConfigError::Missing {
            var: self.name,
            why,
        }
    }
}

// === Listing variables of any type ===

/// A [`Var`] of any type, as the typo guard and `.env.example` see it.
pub trait AnyVar: Sync {
    fn name(&self) -> &'static str;
    fn doc(&self) -> &'static str;
    fn readers(&self) -> Readers;
    fn is_secret(&self) -> bool;
    /// The default as `.env.example` writes it; `None` when there is none.
    fn default_text(&self) -> Option<String>;
    /// The value `.env.example` shows: the default, else the example, else nothing.
    fn shown(&self) -> Option<String>;
    fn is_commented(&self) -> bool;
}

/// A default's text, for `.env.example`.
pub trait DefaultText: Copy + Sync {
    fn text(&self) -> Option<String>;
}

impl DefaultText for Unset {
    fn text(&self) -> Option<String> {
        None
    }
}

macro_rules! default_text {
    ($($t:ty),*) => {$(
        impl DefaultText for $t {
            fn text(&self) -> Option<String> {
                Some(self.to_string())
            }
        }
    )*};
}

default_text!(bool, u32, u64, usize, &'static str);

impl<T: DefaultText> AnyVar for Var<T> {
    fn name(&self) -> &'static str {
        self.name
    }
    fn doc(&self) -> &'static str {
        self.doc
    }
    fn readers(&self) -> Readers {
        self.readers
    }
    fn is_secret(&self) -> bool {
        self.secret
    }
    fn default_text(&self) -> Option<String> {
        self.default.text()
    }
    fn shown(&self) -> Option<String> {
        self.default_text().or(self.example.map(str::to_string))
    }
    fn is_commented(&self) -> bool {
        self.commented
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn names_are_unique_and_well_formed_and_every_variable_is_documented() {
        let mut seen = BTreeSet::new();
        for var in all() {
            let name = var.name();
            assert!(seen.insert(name), "{name} is declared twice");
            assert!(
                name.starts_with(|c: char| c.is_ascii_uppercase())
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
            assert!(!var.doc().trim().is_empty(), "{name} has no documentation");
        }
    }

    #[test]
    fn every_declared_variable_is_in_a_section() {
        // A `Var` left out of `SECTIONS` would escape `.env.example` and the typo guard.
        let sources = [
            include_str!("shared.rs"),
            include_str!("authz.rs"),
            include_str!("api.rs"),
        ];
        let declared: Vec<&str> = sources
            .iter()
            .flat_map(|s| s.lines())
            .filter_map(|l| l.strip_prefix("pub const "))
            .filter_map(|l| l.split_once(": Var<"))
            .map(|(name, _)| name)
            .collect();
        assert!(declared.len() > 50, "{declared:?}");
        for name in declared {
            assert!(find(name).is_some(), "{name} is in no section");
        }
    }

    #[test]
    fn secrets_have_a_file_variant_or_a_default_and_are_never_echoed() {
        // A URL that may carry a password; it has no `_FILE` variant yet.
        const URLS: &[&str] = &["REDIS_URL"];
        for var in all().filter(|v| v.is_secret()) {
            let file = format!("{}_FILE", var.name());
            assert!(
                find(&file).is_some() || var.default_text().is_some() || URLS.contains(&var.name()),
                "{} is secret: offer {file} for secret managers",
                var.name()
            );
        }
        let secret = Var::new("T_SECRET", Readers::Both, 1u64, "a test").secret();
        let e = secret.get(&env(&[("T_SECRET", "hunter2")]));
        assert!(
            matches!(&e, Err(e) if !e.to_string().contains("hunter2")),
            "{e:?}"
        );
    }

    #[test]
    fn blank_means_the_default_or_off_as_declared() {
        let v = Var::new("T_TEXT", Readers::Both, "dflt", "a test");
        assert_eq!(v.value(&env(&[])), "dflt");
        assert_eq!(v.value(&env(&[("T_TEXT", "  ")])), "dflt");
        assert_eq!(v.value(&env(&[("T_TEXT", " x ")])), "x");
        assert_eq!(v.value_or_off(&env(&[])), Some("dflt"));
        assert_eq!(v.value_or_off(&env(&[("T_TEXT", "")])), None);
        assert_eq!(v.value_or_off(&env(&[("T_TEXT", "x")])), Some("x"));
        let flag = Var::new("T_FLAG", Readers::Both, true, "a test");
        assert_eq!(flag.get(&env(&[("T_FLAG", "")])), Ok(true));
        assert_eq!(flag.get(&env(&[("T_FLAG", "Off")])), Ok(false));
        assert_eq!(
            flag.get(&env(&[("T_FLAG", "maybe")]))
                .map_err(|e| e.to_string()),
            Err("T_FLAG is invalid: `maybe` is not true or false".into())
        );
        let header = Var::new("T_HEADER", Readers::Both, "X-Real-IP", "a test");
        assert_eq!(
            header.header_or_off(&env(&[])),
            Ok(Some("x-real-ip".into()))
        );
        assert_eq!(header.header_or_off(&env(&[("T_HEADER", "")])), Ok(None));
        assert!(header.header(&env(&[("T_HEADER", "a b")])).is_err());
    }
}
