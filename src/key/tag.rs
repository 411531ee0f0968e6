use std::{fmt, str::FromStr, sync::Arc};

use sha2::{Digest, Sha256};

use crate::error::ConfigError;

/// Longest accepted tag name, in bytes.
pub const MAX_TAG_NAME_LEN: usize = 64;

/// Instances longer than this (or with bytes outside a safe set) are hashed in
/// the store's version key, so the key stays bounded whatever the request sent.
const MAX_RAW_INSTANCE_LEN: usize = 64;

/// A tag: a thing that can change, written `Name:instance` (`User:42`) or just
/// `Name` (`Dashboard`, empty instance).
///
/// The name is a static identifier, validated on construction: 1 to 64 bytes
/// of ASCII letters, digits, `_`, `-` and `.`, not starting with `_` (those
/// are the crate's own, such as the per-URI tag). The instance usually comes from
/// a request and may hold any text of any length.
///
/// ```
/// use tower_tagged_cache::Tag;
///
/// let tag: Tag = "User:42".parse()?;
/// assert_eq!(tag.name(), "User");
/// assert_eq!(tag.instance(), "42");
/// assert_eq!(tag, Tag::new("User", 42)?);
/// assert_eq!(Tag::new("Dashboard", "")?.to_string(), "Dashboard");
/// assert!(Tag::new("Us{er", 1).is_err());
/// # Ok::<(), tower_tagged_cache::ConfigError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag {
    name: Arc<str>,
    instance: String,
}

impl Tag {
    /// A tag with the given name and instance.
    ///
    /// # Errors
    ///
    /// When `name` is not a valid tag name.
    pub fn new(name: impl AsRef<str>, instance: impl fmt::Display) -> Result<Self, ConfigError> {
        let name = name.as_ref();
        validate_name(name, name)?;
        Ok(Self {
            name: Arc::from(name),
            instance: instance.to_string(),
        })
    }

    /// Builds a tag from a name already validated (by a template).
    pub(crate) fn from_parts(name: Arc<str>, instance: String) -> Self {
        Self { name, instance }
    }

    /// The tag's name (`User` in `User:42`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tag's instance (`42` in `User:42`); empty for a tag like `Dashboard`.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The part of a store key that names this tag's version (the built-in
    /// stores write `{prefix}:t:{storage id}`): `Name:instance` when the
    /// instance is short and plain, else `Name:#<sha256 hex of the
    /// instance>`. Bounded whatever the request sent, and injective.
    ///
    /// ```
    /// use tower_tagged_cache::Tag;
    ///
    /// assert_eq!(Tag::new("User", 42)?.storage_id(), "User:42");
    /// assert!(Tag::new("User", "x".repeat(10_000))?.storage_id().len() < 100);
    /// # Ok::<(), tower_tagged_cache::ConfigError>(())
    /// ```
    pub fn storage_id(&self) -> String {
        let mut out = String::with_capacity(self.name.len() + 1 + 65);
        self.write_storage_id(&mut out);
        out
    }

    /// Appends the part of the store key that names this tag's version:
    /// `Name:instance` when the instance is short and plain, else
    /// `Name:#<sha256 hex of the instance>`. The mapping is injective: a raw
    /// instance never contains `#`.
    pub(crate) fn write_storage_id(&self, out: &mut String) {
        out.push_str(&self.name);
        out.push(':');
        let raw_ok = self.instance.len() <= MAX_RAW_INSTANCE_LEN
            && self.instance.bytes().all(is_plain_instance_byte);
        if raw_ok {
            out.push_str(&self.instance);
        } else {
            out.push('#');
            super::push_hex(out, &Sha256::digest(self.instance.as_bytes()));
        }
    }
}

fn is_plain_instance_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'_' | b'-' | b'.' | b'@' | b'+' | b'=' | b',' | b'/' | b':'
        )
}

fn validate_name(name: &str, context: &str) -> Result<(), ConfigError> {
    if name.is_empty() {
        return Err(ConfigError::new(format!(
            "tag `{context}`: the tag name is empty"
        )));
    }
    if name.starts_with('_') {
        return Err(ConfigError::new(format!(
            "tag `{context}`: tag names starting with `_` are reserved"
        )));
    }
    if name.len() > MAX_TAG_NAME_LEN {
        return Err(ConfigError::new(format!(
            "tag `{context}`: the tag name is longer than {MAX_TAG_NAME_LEN} bytes"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(ConfigError::new(format!(
            "tag `{context}`: the tag name may only hold ASCII letters, digits, `_`, `-` and `.`, found {c:?}"
        )));
    }
    Ok(())
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.instance.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}:{}", self.name, self.instance)
        }
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({self})")
    }
}

impl FromStr for Tag {
    type Err = ConfigError;

    /// Parses `Name:instance` (split at the first `:`) or `Name`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, instance) = s.split_once(':').unwrap_or((s, ""));
        validate_name(name, s)?;
        Ok(Self {
            name: Arc::from(name),
            instance: instance.to_owned(),
        })
    }
}

/// Something that names a tag: a [`Tag`], or text such as `"User:42"` that
/// parses as one. Accepted wherever tags are given at run time.
pub trait IntoTag {
    /// Converts into a [`Tag`].
    ///
    /// # Errors
    ///
    /// When the text is not a valid tag.
    fn into_tag(self) -> Result<Tag, ConfigError>;
}

/// Every tag of `tags`, or the first that does not convert.
pub(crate) fn into_tags<I>(tags: I) -> Result<Vec<Tag>, ConfigError>
where
    I: IntoIterator,
    I::Item: IntoTag,
{
    tags.into_iter().map(IntoTag::into_tag).collect()
}

impl IntoTag for Tag {
    fn into_tag(self) -> Result<Tag, ConfigError> {
        Ok(self)
    }
}

impl IntoTag for &Tag {
    fn into_tag(self) -> Result<Tag, ConfigError> {
        Ok(self.clone())
    }
}

impl IntoTag for &str {
    fn into_tag(self) -> Result<Tag, ConfigError> {
        self.parse()
    }
}

impl IntoTag for String {
    fn into_tag(self) -> Result<Tag, ConfigError> {
        self.parse()
    }
}

impl IntoTag for &String {
    fn into_tag(self) -> Result<Tag, ConfigError> {
        self.parse()
    }
}

/// A tag template such as `"User:{id}"`, `"Stats:daily_{user_id}"` or
/// `"Dashboard"`, filled in per request.
///
/// The name part is fixed and validated when the template is parsed; the
/// instance part mixes literal text and `{placeholder}`s. Literal braces are
/// written `{{` and `}}`.
#[derive(Clone, PartialEq, Eq)]
pub struct TagTemplate {
    source: String,
    name: Arc<str>,
    pieces: Vec<Piece>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Param(String),
}

impl TagTemplate {
    /// Parses a template.
    ///
    /// # Errors
    ///
    /// When the name is invalid, a brace is unbalanced, or a placeholder is
    /// empty or not an identifier. The message names the template.
    ///
    /// ```
    /// use tower_tagged_cache::key::TagTemplate;
    ///
    /// let t = TagTemplate::parse("Stats:daily_{user_id}")?;
    /// assert_eq!(t.placeholders().collect::<Vec<_>>(), ["user_id"]);
    /// let tag = t.render(|p| (p == "user_id").then_some("7")).unwrap();
    /// assert_eq!(tag.to_string(), "Stats:daily_7");
    /// assert!(TagTemplate::parse("User:{id").is_err());
    /// # Ok::<(), tower_tagged_cache::ConfigError>(())
    /// ```
    pub fn parse(template: &str) -> Result<Self, ConfigError> {
        let (name, rest) = template.split_once(':').unwrap_or((template, ""));
        validate_name(name, template)?;
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut chars = rest.chars().peekable();
        let bad = |why: &str| ConfigError::new(format!("tag template `{template}`: {why}"));
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    lit.push('}');
                }
                '{' => {
                    let mut param = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) if c.is_ascii_alphanumeric() || c == '_' => param.push(c),
                            Some(c) => {
                                return Err(bad(&format!(
                                    "placeholder holds {c:?}; use letters, digits and `_`"
                                )));
                            }
                            None => return Err(bad("a `{` is never closed")),
                        }
                    }
                    if param.is_empty() {
                        return Err(bad("empty placeholder `{}`"));
                    }
                    if !lit.is_empty() {
                        pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                    }
                    pieces.push(Piece::Param(param));
                }
                '}' => return Err(bad("a `}` has no matching `{` (write `}}` for a literal)")),
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        Ok(Self {
            source: template.to_owned(),
            name: Arc::from(name),
            pieces,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The names of the placeholders, in order of appearance.
    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Param(p) => Some(p.as_str()),
            Piece::Lit(_) => None,
        })
    }

    /// Fills the placeholders; `None` when `lookup` has no value for one.
    pub fn render<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> Option<Tag> {
        let mut instance = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Lit(l) => instance.push_str(l),
                Piece::Param(p) => instance.push_str(lookup(p)?),
            }
        }
        Some(Tag::from_parts(self.name.clone(), instance))
    }
}

impl fmt::Debug for TagTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TagTemplate({:?})", self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage_id(tag: &Tag) -> String {
        let mut s = String::new();
        tag.write_storage_id(&mut s);
        s
    }

    #[test]
    fn names_are_validated() {
        for bad in ["", "a:b", "a{b", "a b", "é", "_uri", &"x".repeat(65)] {
            let err = Tag::new(bad, 1).unwrap_err();
            assert!(err.to_string().contains("tag name"), "{bad:?}: {err}");
        }
        assert!(Tag::new("User.v2-x_y", 1).is_ok());
    }

    #[test]
    fn parse_splits_at_first_colon() {
        let t: Tag = "User:4:2".parse().unwrap();
        assert_eq!((t.name(), t.instance()), ("User", "4:2"));
        let t: Tag = "Dashboard".parse().unwrap();
        assert_eq!((t.name(), t.instance()), ("Dashboard", ""));
    }

    #[test]
    fn storage_ids_are_bounded_and_distinct() {
        let plain = Tag::new("User", "42").unwrap();
        assert_eq!(storage_id(&plain), "User:42");
        let long = Tag::new("User", "x".repeat(10_000)).unwrap();
        assert!(storage_id(&long).len() < 100);
        let odd = Tag::new("User", "a b\r\n{x}").unwrap();
        let id = storage_id(&odd);
        assert!(id.starts_with("User:#") && id.len() == 5 + 1 + 64, "{id}");
        // A raw instance can never look like a hashed one.
        let sneaky = Tag::new("User", &id[5..]).unwrap();
        assert_ne!(storage_id(&sneaky), id);
    }

    #[test]
    fn templates_parse_and_render() {
        let t = TagTemplate::parse("Stats:daily_{user_id}_{day}").unwrap();
        assert_eq!(t.placeholders().collect::<Vec<_>>(), ["user_id", "day"]);
        let tag = t
            .render(|p| match p {
                "user_id" => Some("7"),
                "day" => Some("mon"),
                _ => None,
            })
            .unwrap();
        assert_eq!(tag.to_string(), "Stats:daily_7_mon");
        assert!(t.render(|_| None).is_none());
        let lit = TagTemplate::parse("A:{{x}}").unwrap();
        assert_eq!(lit.render(|_| None).unwrap().instance(), "{x}");
        let plain = TagTemplate::parse("Dashboard").unwrap();
        assert_eq!(plain.render(|_| None).unwrap().to_string(), "Dashboard");
    }

    #[test]
    fn bad_templates_name_themselves() {
        for bad in [
            "User:{id",
            "User:id}",
            "User:{}",
            "User:{a-b}",
            "Us er:{id}",
            ":{id}",
        ] {
            let err = TagTemplate::parse(bad).unwrap_err();
            assert!(err.to_string().contains(bad), "{bad}: {err}");
        }
    }
}
