//! The `#[tagged_cache(...)]` attribute of `tower-tagged-cache`; use it
//! through that crate's `macros` feature.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{ToTokens, quote, quote_spanned};
use syn::{
    Expr, ExprLit, FnArg, Ident, ItemFn, Lit, LitStr, Pat, ReturnType, Token, bracketed,
    parse::{Parse, ParseStream},
    parse_macro_input,
    punctuated::Punctuated,
    spanned::Spanned,
};

/// Longest accepted tag name, in bytes (as in `tower_tagged_cache::key`).
const MAX_TAG_NAME_LEN: usize = 64;

/// Caches the result of an `async fn` in a `TagCache`, under a fragmented key
/// made of the function's name, a key version, an optional group, the
/// `vary_on` arguments and the current versions of its tags. The Rust twin of
/// Django's `@tagged_cache(tags=['User:{user_id}'])`.
///
/// ```ignore
/// use std::sync::LazyLock;
/// use serde::{Deserialize, Serialize};
/// use tower_tagged_cache::{MemoryStore, TagCache, tagged_cache};
///
/// static CACHE: LazyLock<TagCache<MemoryStore>> =
///     LazyLock::new(|| TagCache::new(MemoryStore::new()));
///
/// #[derive(Serialize, Deserialize)]
/// struct Profile { name: String, lang: String }
///
/// #[tagged_cache(
///     cache = CACHE,
///     ttl = 60,
///     tags = ["User:{user_id}", "Dashboard"],
///     vary_on = [lang],
///     name = "profile",
///     version = 2,
/// )]
/// async fn profile(user_id: u64, lang: String) -> Profile {
///     // Runs on a miss only.
///     Profile { name: format!("user {user_id}"), lang }
/// }
///
/// # async fn run() -> Result<(), tower_tagged_cache::Error> {
/// let p = profile(1, "en".into()).await; // computed and stored
/// let p = profile(1, "en".into()).await; // from the cache
/// CACHE.invalidator().invalidate(["User:1"]).await?;
/// let p = profile(1, "en".into()).await; // computed again
/// # Ok(()) }
/// ```
///
/// # Arguments
///
/// - `cache = <expr>` (required): evaluated on every call; a `TagCache<St>`,
///   a reference to one, or anything that dereferences to one (a
///   `LazyLock<TagCache<St>>` static).
/// - `ttl = <seconds>` (required): an integer literal of seconds, or any
///   expression of type `std::time::Duration`.
/// - `tags = ["Name:literal{arg}literal", ...]`: tag templates whose
///   `{placeholder}`s name arguments of the function, rendered with
///   `Display`. Tag names are checked at compile time, as are placeholders.
/// - `vary_on = [arg, ...]`: arguments (rendered with `Display`) that are part
///   of the key besides the tags.
/// - `name = "..."`: the key name; defaults to the function's path
///   (`module_path!()::fn_name`).
/// - `version = <u32>`: the key version, raise it when the return type changes
///   meaning; defaults to 1.
/// - `group = "..."`: a group that namespaces the key; defaults to none.
///
/// The function must be `async`, with arguments of the form `name: Type`
/// (a `self` receiver is accepted, but cannot be a placeholder or be varied
/// on), and return a type that is `Serialize + DeserializeOwned`.
///
/// Store failures never surface: the body runs uncached, as it does when a
/// tag turns out invalid at run time.
#[proc_macro_attribute]
pub fn tagged_cache(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = parse_macro_input!(attr as Args);
    let item_tokens: TokenStream2 = item.clone().into();
    let func = parse_macro_input!(item as ItemFn);
    match expand(args, func) {
        Ok(tokens) => tokens.into(),
        Err(err) => {
            // Keep the function so its callers do not add errors of their own.
            let mut out = err.to_compile_error();
            out.extend(item_tokens);
            out.into()
        }
    }
}

enum Ttl {
    Secs(syn::LitInt),
    Expr(Expr),
}

struct Args {
    cache: Option<Expr>,
    ttl: Option<Ttl>,
    tags: Vec<LitStr>,
    vary_on: Vec<Ident>,
    name: Option<LitStr>,
    version: Option<syn::LitInt>,
    group: Option<LitStr>,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Args {
            cache: None,
            ttl: None,
            tags: Vec::new(),
            vary_on: Vec::new(),
            name: None,
            version: None,
            group: None,
        };
        let mut seen: Vec<String> = Vec::new();
        while !input.is_empty() {
            let key: Ident = input.parse()?;
            let key_str = key.to_string();
            if seen.contains(&key_str) {
                return Err(syn::Error::new(
                    key.span(),
                    format!("`{key_str}` is given twice"),
                ));
            }
            input.parse::<Token![=]>()?;
            match key_str.as_str() {
                "cache" => args.cache = Some(input.parse()?),
                "ttl" => {
                    let expr: Expr = input.parse()?;
                    args.ttl = Some(match expr {
                        Expr::Lit(ExprLit {
                            lit: Lit::Int(int), ..
                        }) => {
                            int.base10_parse::<u64>()?;
                            Ttl::Secs(int)
                        }
                        other => Ttl::Expr(other),
                    });
                }
                "tags" => {
                    let content;
                    bracketed!(content in input);
                    let list = Punctuated::<LitStr, Token![,]>::parse_terminated(&content)?;
                    args.tags = list.into_iter().collect();
                }
                "vary_on" => {
                    let content;
                    bracketed!(content in input);
                    let list = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
                    args.vary_on = list.into_iter().collect();
                }
                "name" => args.name = Some(input.parse()?),
                "version" => {
                    let v: syn::LitInt = input.parse()?;
                    v.base10_parse::<u32>()?;
                    args.version = Some(v);
                }
                "group" => args.group = Some(input.parse()?),
                _ => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!(
                            "unknown argument `{key_str}`; expected one of `cache`, `ttl`, \
                             `tags`, `vary_on`, `name`, `version`, `group`"
                        ),
                    ));
                }
            }
            seen.push(key_str);
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(args)
    }
}

/// One piece of a tag template's instance part.
enum Piece {
    Lit(String),
    Param(String),
}

/// Parses a tag template as `tower_tagged_cache::TagTemplate::parse` does:
/// the name (validated), then literal text and `{placeholder}`s.
fn parse_template(template: &str) -> Result<(String, Vec<Piece>), String> {
    let (name, rest) = template.split_once(':').unwrap_or((template, ""));
    let bad = |why: String| format!("tag template `{template}`: {why}");
    if name.is_empty() {
        return Err(bad("the tag name is empty".into()));
    }
    if name.starts_with('_') {
        return Err(bad("tag names starting with `_` are reserved".into()));
    }
    if name.len() > MAX_TAG_NAME_LEN {
        return Err(bad(format!(
            "the tag name is longer than {MAX_TAG_NAME_LEN} bytes"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(bad(format!(
            "the tag name `{name}` may only hold ASCII letters, digits, `_`, `-` and `.`, found {c:?}"
        )));
    }
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut chars = rest.chars().peekable();
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
                            return Err(bad(format!(
                                "placeholder holds {c:?}; use letters, digits and `_`"
                            )));
                        }
                        None => return Err(bad("a `{` is never closed".into())),
                    }
                }
                if param.is_empty() {
                    return Err(bad("empty placeholder `{}`".into()));
                }
                if !lit.is_empty() {
                    pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                }
                pieces.push(Piece::Param(param));
            }
            '}' => {
                return Err(bad(
                    "a `}` has no matching `{` (write `}}` for a literal)".into()
                ));
            }
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        pieces.push(Piece::Lit(lit));
    }
    Ok((name.to_owned(), pieces))
}

fn expand(args: Args, mut func: ItemFn) -> syn::Result<TokenStream2> {
    let sig = &func.sig;
    let fn_name = sig.ident.to_string();
    if sig.asyncness.is_none() {
        return Err(syn::Error::new(
            sig.fn_token.span(),
            format!("#[tagged_cache] supports only `async fn`; make `{fn_name}` async"),
        ));
    }
    if let Some(v) = &sig.variadic {
        return Err(syn::Error::new(
            v.span(),
            "#[tagged_cache] does not support variadic functions",
        ));
    }

    // The arguments, which must be plain `name: Type`.
    let mut arg_names: Vec<Ident> = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(_) => {}
            FnArg::Typed(pt) => match &*pt.pat {
                Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => {
                    arg_names.push(pi.ident.clone());
                }
                other => {
                    return Err(syn::Error::new(
                        other.span(),
                        "#[tagged_cache] supports only arguments of the form `name: Type`; \
                         bind the pattern inside the body instead",
                    ));
                }
            },
        }
    }
    let find_arg = |name: &str| arg_names.iter().find(|a| *a == name);
    let arg_list = || {
        if arg_names.is_empty() {
            "it has none".to_owned()
        } else {
            let names: Vec<String> = arg_names.iter().map(|a| format!("`{a}`")).collect();
            format!("its arguments are {}", names.join(", "))
        }
    };

    let cache = args.cache.ok_or_else(|| {
        syn::Error::new(
            Span::call_site(),
            "#[tagged_cache] needs `cache = <expr>`, an expression that gives the `TagCache` \
             (or a reference to one)",
        )
    })?;
    let ttl = match args.ttl {
        Some(Ttl::Secs(secs)) => {
            quote_spanned!(secs.span()=> ::std::time::Duration::from_secs(#secs))
        }
        Some(Ttl::Expr(expr)) => {
            quote_spanned!(expr.span()=> { let __ttc_ttl: ::std::time::Duration = #expr; __ttc_ttl })
        }
        None => {
            return Err(syn::Error::new(
                Span::call_site(),
                "#[tagged_cache] needs `ttl = <seconds>` (or `ttl = <Duration expression>`)",
            ));
        }
    };

    // Tags, rendered from the arguments before the body takes them.
    let mut tag_exprs = Vec::new();
    for lit in &args.tags {
        let template = lit.value();
        let (name, pieces) =
            parse_template(&template).map_err(|msg| syn::Error::new(lit.span(), msg))?;
        // The tag as a format string (literal braces doubled), and as plain
        // text when it has no placeholder.
        let mut fmt = name.clone();
        let mut plain = name;
        let mut fmt_args = Vec::new();
        if !pieces.is_empty() {
            fmt.push(':');
            plain.push(':');
        }
        for piece in &pieces {
            match piece {
                Piece::Lit(l) => {
                    fmt.push_str(&l.replace('{', "{{").replace('}', "}}"));
                    plain.push_str(l);
                }
                Piece::Param(p) => {
                    let arg = find_arg(p).ok_or_else(|| {
                        syn::Error::new(
                            lit.span(),
                            format!(
                                "tag template `{template}`: the placeholder `{{{p}}}` names no \
                                 argument of `{fn_name}` ({})",
                                arg_list()
                            ),
                        )
                    })?;
                    fmt.push_str("{}");
                    fmt_args.push(arg.clone());
                }
            }
        }
        tag_exprs.push(if fmt_args.is_empty() {
            let plain = LitStr::new(&plain, lit.span());
            quote_spanned!(lit.span()=> ::std::string::String::from(#plain))
        } else {
            let fmt = LitStr::new(&fmt, lit.span());
            quote_spanned!(lit.span()=> ::std::format!(#fmt, #(#fmt_args),*))
        });
    }

    let mut vary_calls = Vec::new();
    for ident in &args.vary_on {
        let arg = find_arg(&ident.to_string()).ok_or_else(|| {
            syn::Error::new(
                ident.span(),
                format!(
                    "`vary_on` names `{ident}`, which is no argument of `{fn_name}` ({})",
                    arg_list()
                ),
            )
        })?;
        let label = LitStr::new(&ident.to_string(), ident.span());
        vary_calls.push(quote_spanned!(ident.span()=> .vary(#label, &#arg)));
    }

    let key_name = match &args.name {
        Some(name) => name.to_token_stream(),
        None => {
            let lit = LitStr::new(&fn_name, sig.ident.span());
            quote!(::std::concat!(::std::module_path!(), "::", #lit))
        }
    };
    let version = match &args.version {
        Some(v) => quote!(.version(#v)),
        None => quote!(),
    };
    let group = match &args.group {
        Some(g) => quote!(.group(#g)),
        None => quote!(),
    };
    let tags = if tag_exprs.is_empty() {
        quote!()
    } else {
        quote!(.tags([#(#tag_exprs),*]))
    };
    let ret = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => ty.to_token_stream(),
    };

    let body = &func.block;
    let new_body = quote! {
        {
            fn __ttc_typed<__TtcT, __TtcF>(f: __TtcF) -> __TtcF
            where
                __TtcF: ::std::future::Future<Output = __TtcT>,
            {
                f
            }
            let __ttc_cache = &(#cache);
            let __ttc_key = __ttc_cache
                .key(#key_name)
                #version
                #group
                #(#vary_calls)*
                #tags;
            let mut __ttc_body = ::std::pin::pin!(__ttc_typed::<#ret, _>(async move #body));
            let __ttc_result = __ttc_key.get_or_set(#ttl, || __ttc_body.as_mut()).await;
            match __ttc_result {
                ::std::result::Result::Ok(__ttc_value) => __ttc_value,
                // Only an invalid tag fails, before the body ever ran: run it uncached.
                ::std::result::Result::Err(_) => __ttc_body.await,
            }
        }
    };
    *func.block = syn::parse2(new_body)?;
    Ok(func.into_token_stream())
}
