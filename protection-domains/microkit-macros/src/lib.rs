//! `#[protection_domain]`, as in `sel4-microkit`: marks the PD's `fn init() -> impl Handler`
//! and makes it the program's entry. Optional arguments, in either order:
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
    let stack = stack.map(|size| {
        quote! {
            #[unsafe(no_mangle)]
            #[used]
            static __atoll_stack_size: usize = #size;
        }
    });
    let heap = heap.map(|size| {
        quote! {
            #[global_allocator]
            static __ATOLL_HEAP: ::atoll_microkit::heap::Heap<{ #size }> =
                ::atoll_microkit::heap::Heap::new();
        }
    });
    quote! {
        #init
        #stack
        #heap
        /// The program's entry, called by the runtime's `_start`.
        #[unsafe(no_mangle)]
        extern "C" fn atoll_pd_main() -> ! {
            ::atoll_microkit::run_main(#name)
        }
    }
    .into()
}
