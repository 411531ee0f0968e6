use std::fmt;

use bytes::Bytes;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::Tag;

/// Domain separator hashed first, so keys of a future format never collide
/// with keys of this one.
const DOMAIN: &[u8] = b"tower-tagged-cache/key/v1";

/// The opaque version token of a tag (or of the epoch).
///
/// Versions are only compared and hashed, never interpreted. Fresh ones are 64
/// random bits written as 16 lowercase hex digits; bytes read back from a store
/// are accepted as they are.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Version(Bytes);

impl Version {
    /// A fresh random version.
    pub fn random() -> Self {
        let n: u64 = rand::random();
        Self(Bytes::from(format!("{n:016x}")))
    }

    /// Wraps bytes read from a store.
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        Self(bytes.into())
    }

    /// The raw token.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({})", String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

/// The key of one request under one rule, before the tag versions are known.
///
/// It holds the SHA-256 digest of the static parts (rule base name, key
/// version, group, the request target and every vary-on value, each
/// length-prefixed) and the rule's tags, sorted and de-duplicated. A store
/// turns it into an entry key by adding the current version of the epoch and
/// of each tag: see [`FragmentedKey::entry_id`].
///
/// ```
/// use tower_tagged_cache::{Tag, key::{FragmentedKey, Version}};
///
/// let key = FragmentedKey::builder("user_detail", 1, "")
///     .vary("path", Some(b"/users/42"))
///     .tag(Tag::new("User", 42)?)
///     .finish();
/// let v1 = [Version::from_bytes("e1"), Version::from_bytes("a")];
/// let v2 = [Version::from_bytes("e1"), Version::from_bytes("b")];
/// assert_ne!(key.entry_id(&v1), key.entry_id(&v2));
/// # Ok::<(), tower_tagged_cache::ConfigError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct FragmentedKey {
    static_digest: [u8; 32],
    tags: Vec<Tag>,
}

/// Builds a [`FragmentedKey`] part by part. See [`FragmentedKey::builder`].
#[derive(Clone)]
pub struct KeyBuilder {
    hasher: Sha256,
    tags: Vec<Tag>,
}

impl fmt::Debug for KeyBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyBuilder")
            .field("tags", &self.tags)
            .finish_non_exhaustive()
    }
}

fn update_part(hasher: &mut Sha256, part: &[u8]) {
    hasher.update((part.len() as u64).to_le_bytes());
    hasher.update(part);
}

impl FragmentedKey {
    /// Starts a key for a rule's base name, key version and group id.
    pub fn builder(base_name: &str, key_version: u32, group: &str) -> KeyBuilder {
        let mut hasher = Sha256::new();
        update_part(&mut hasher, DOMAIN);
        update_part(&mut hasher, base_name.as_bytes());
        update_part(&mut hasher, &key_version.to_le_bytes());
        update_part(&mut hasher, group.as_bytes());
        KeyBuilder {
            hasher,
            tags: Vec::new(),
        }
    }

    /// The tags of this key, sorted and de-duplicated.
    pub fn tags(&self) -> &[Tag] {
        &self.tags
    }

    /// The digest of the static parts.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn static_digest(&self) -> &[u8; 32] {
        &self.static_digest
    }

    /// The entry id under the given versions: `hex(static digest) ":"
    /// sha1hex(len ":" version ...)`, over the epoch version followed by one
    /// version per tag, in [`tags`](Self::tags) order.
    ///
    /// The second half is what a Redis script can compute with
    /// `redis.sha1hex`, so the Redis store builds the same id server-side.
    pub fn entry_id(&self, versions: &[Version]) -> String {
        let mut id = String::with_capacity(64 + 1 + 40);
        self.write_entry_id(&mut id, versions);
        id
    }

    /// Appends the [entry id](Self::entry_id) to `out`.
    pub(crate) fn write_entry_id(&self, out: &mut String, versions: &[Version]) {
        let mut sha1 = Sha1::new();
        let mut len = itoa::Buffer::new();
        for v in versions {
            sha1.update(len.format(v.0.len()).as_bytes());
            sha1.update(b":");
            sha1.update(&v.0);
        }
        super::push_hex(out, &self.static_digest);
        out.push(':');
        super::push_hex(out, &sha1.finalize());
    }

    /// The static digest in lowercase hex.
    pub(crate) fn static_hex(&self) -> String {
        let mut out = String::with_capacity(64);
        super::push_hex(&mut out, &self.static_digest);
        out
    }
}

impl fmt::Debug for FragmentedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FragmentedKey")
            .field("static", &self.static_hex())
            .field("tags", &self.tags)
            .finish()
    }
}

impl KeyBuilder {
    /// Adds one vary-on value, in declared order. `None` (the value is absent
    /// from the request) and `Some(b"")` (present but empty) differ.
    pub fn vary(mut self, name: &str, value: Option<&[u8]>) -> Self {
        self.push_vary(name, value);
        self
    }

    /// In-place form of [`vary`](Self::vary).
    pub fn push_vary(&mut self, name: &str, value: Option<&[u8]>) {
        self.hasher.update(b"v");
        update_part(&mut self.hasher, name.as_bytes());
        match value {
            None => self.hasher.update(b"\x00"),
            Some(value) => {
                self.hasher.update(b"\x01");
                update_part(&mut self.hasher, value);
            }
        }
    }

    /// Adds a tag. Order and duplicates do not matter.
    pub fn tag(mut self, tag: Tag) -> Self {
        self.tags.push(tag);
        self
    }

    /// In-place form of [`tag`](Self::tag).
    pub fn push_tag(&mut self, tag: Tag) {
        self.tags.push(tag);
    }

    /// Finishes the key.
    pub fn finish(self) -> FragmentedKey {
        let Self {
            mut hasher,
            mut tags,
        } = self;
        tags.sort_unstable();
        tags.dedup();
        hasher.update(b"t");
        hasher.update((tags.len() as u64).to_le_bytes());
        for tag in &tags {
            update_part(&mut hasher, tag.name().as_bytes());
            update_part(&mut hasher, tag.instance().as_bytes());
        }
        FragmentedKey {
            static_digest: hasher.finalize().into(),
            tags,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tag(name: &str, inst: &str) -> Tag {
        Tag::new(name, inst).unwrap()
    }

    #[derive(Debug, Clone, PartialEq)]
    struct Input {
        base: String,
        key_version: u32,
        group: String,
        vary: Vec<(String, Option<Vec<u8>>)>,
        tags: Vec<(String, String)>,
    }

    fn input() -> impl Strategy<Value = Input> {
        (
            "[a-c]{0,3}",
            0u32..3,
            "[a-c]{0,2}",
            prop::collection::vec(
                (
                    "[a-c:]{0,3}",
                    prop::option::of(prop::collection::vec(0u8..4, 0..3)),
                ),
                0..3,
            ),
            prop::collection::vec(("[A-C][A-C_]{0,2}", "[a-c:_]{0,3}"), 0..3),
        )
            .prop_map(|(base, key_version, group, vary, tags)| Input {
                base,
                key_version,
                group,
                vary,
                tags,
            })
    }

    fn build(i: &Input) -> FragmentedKey {
        let mut b = FragmentedKey::builder(&i.base, i.key_version, &i.group);
        for (n, v) in &i.vary {
            b.push_vary(n, v.as_deref());
        }
        for (n, inst) in &i.tags {
            b.push_tag(tag(n, inst));
        }
        b.finish()
    }

    /// The set semantics of tags: two inputs are the same key when everything
    /// but tag order and duplicates is equal.
    fn canonical(i: &Input) -> Input {
        let mut c = i.clone();
        c.tags.sort();
        c.tags.dedup();
        c
    }

    proptest! {
        #[test]
        fn distinct_inputs_give_distinct_keys(a in input(), b in input()) {
            let same = canonical(&a) == canonical(&b);
            prop_assert_eq!(build(&a) == build(&b), same);
        }

        #[test]
        fn tag_order_and_duplicates_do_not_matter(i in input(), seed in any::<u64>()) {
            let mut shuffled = i.clone();
            let n = shuffled.tags.len();
            if n > 1 {
                shuffled.tags.rotate_left((seed as usize) % n);
                let dup = shuffled.tags[0].clone();
                shuffled.tags.push(dup);
            }
            prop_assert_eq!(build(&i), build(&shuffled));
        }

        #[test]
        fn changing_any_version_changes_the_entry_id(
            i in input(),
            versions in prop::collection::vec("[0-9a-f]{0,4}", 4),
            which in 0usize..4,
            replacement in "[0-9a-f:]{0,5}",
        ) {
            let key = build(&i);
            let n = key.tags().len() + 1;
            let before: Vec<Version> = versions.iter().take(n).map(|v| Version::from_bytes(v.clone())).collect();
            prop_assume!(before.len() == n);
            let which = which % n;
            prop_assume!(before[which].as_bytes() != replacement.as_bytes());
            let mut after = before.clone();
            after[which] = Version::from_bytes(replacement);
            prop_assert_ne!(key.entry_id(&before), key.entry_id(&after));
        }
    }

    #[test]
    fn concatenation_lookalikes_differ() {
        let a = FragmentedKey::builder("p", 1, "")
            .tag(tag("User_4", "2"))
            .finish();
        let b = FragmentedKey::builder("p", 1, "")
            .tag(tag("User", "4_2"))
            .finish();
        assert_ne!(a, b);
        let a = FragmentedKey::builder("ab", 1, "c").finish();
        let b = FragmentedKey::builder("a", 1, "bc").finish();
        assert_ne!(a, b);
        let v = |s: &'static str| Version::from_bytes(s);
        let k = FragmentedKey::builder("p", 1, "").finish();
        assert_ne!(
            k.entry_id(&[v("a"), v("bc")]),
            k.entry_id(&[v("ab"), v("c")])
        );
    }

    #[test]
    fn absent_and_empty_vary_values_differ() {
        let a = FragmentedKey::builder("p", 1, "").vary("h", None).finish();
        let b = FragmentedKey::builder("p", 1, "")
            .vary("h", Some(b""))
            .finish();
        assert_ne!(a, b);
    }

    #[test]
    fn random_versions_are_fresh() {
        let a = Version::random();
        assert_eq!(a.as_bytes().len(), 16);
        assert_ne!(a, Version::random());
    }
}
