//! `#[protection_domain]`, as in `sel4-microkit`: marks the PD's `fn init() -> impl Handler`
//! and makes it the program's entry, through the runtime's `declare_protection_domain!`
//! under whatever name the PD's `Cargo.toml` gives the runtime. Optional arguments, in
//! either order:
//!
//! - `stack_size = <expr>`: accepted for source compatibility. On Atoll the stack is mapped
//!   by the `microkit` tool from the description's `stack_size` attribute; the value is
//!   kept in the symbol `__atoll_stack_size` for inspection.
//! - `heap_size = <expr>`: a heap of that many bytes in the program's `.bss`, served by the
//!   runtime's first-fit allocator as the `#[global_allocator]`.

#![forbid(unsafe_code)]

use proc_macro::TokenStream;
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, ItemFn, Token, parse_macro_input};

/// One `name = value` argument.
struct Arg {
    name: Ident,
    value: Expr,
}

impl Parse for Arg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let name: Ident = input.parse()?;
        input.parse::<Token![=]>()?;
        let value: Expr = input.parse()?;
        Ok(Arg { name, value })
    }
}

/// Marks `fn init() -> impl Handler` as the protection domain's initialisation: the runtime
/// calls it once, then runs Microkit's event loop on the handler it returns.
#[proc_macro_attribute]
pub fn protection_domain(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = parse_macro_input!(attr with Punctuated::<Arg, Token![,]>::parse_terminated);
    let init = parse_macro_input!(item as ItemFn);
    let mut stack = None;
    let mut heap = None;
    for arg in args {
        let seen = match arg.name.to_string().as_str() {
            "stack_size" => &mut stack,
            "heap_size" => &mut heap,
            _ => {
                return syn::Error::new(
                    arg.name.span(),
                    "unknown argument: #[protection_domain] takes stack_size and heap_size",
                )
                .to_compile_error()
                .into();
            }
        };
        if seen.is_some() {
            return syn::Error::new(arg.name.span(), "argument given twice")
                .to_compile_error()
                .into();
        }
        *seen = Some(arg.value);
    }
    if !init.sig.inputs.is_empty() {
        return syn::Error::new_spanned(&init.sig.inputs, "the init function takes no arguments")
            .to_compile_error()
            .into();
    }
    let name = &init.sig.ident;
    let runtime = match runtime_path() {
        Ok(path) => path,
        Err(error) => return error.to_compile_error().into(),
    };
    let stack = stack.map(|size| quote! { , stack_size = #size });
    let heap = heap.map(|size| quote! { , heap_size = #size });
    quote! {
        #init
        #runtime::declare_protection_domain!(init = #name #stack #heap);
    }
    .into()
}

/// The path of the runtime crate as the PD's `Cargo.toml` names it: `::atoll_microkit`, or
/// `::sel4_microkit` for a PD that depends on it as `sel4-microkit = { package =
/// "atoll-microkit", … }`, so the attribute works under any Cargo rename.
fn runtime_path() -> syn::Result<proc_macro2::TokenStream> {
    match proc_macro_crate::crate_name("atoll-microkit") {
        Ok(proc_macro_crate::FoundCrate::Itself) => Ok(quote! { crate }),
        Ok(proc_macro_crate::FoundCrate::Name(name)) => {
            let ident = Ident::new(&name, proc_macro2::Span::call_site());
            Ok(quote! { ::#ident })
        }
        Err(error) => Err(syn::Error::new(
            proc_macro2::Span::call_site(),
            format!("#[protection_domain] needs atoll-microkit among the dependencies: {error}"),
        )),
    }
}
