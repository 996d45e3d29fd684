//! Redis strings: [`Str`], one borrowed for the life of what owns it (a command's argv, an
//! [`OwnedStr`]), and [`OwnedStr`], a reference we hold and release on drop.

use super::StrPtr;
use redis_module::raw;
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

/// A `RedisModuleString` borrowed for `'a`. Only this module makes one (from a command's argv,
/// a filter argument or an [`OwnedStr`]), so its bytes are valid for `'a`.
/// `repr(transparent)`: a `&[Str]` is a `RedisModuleString **` array the server can read.
#[repr(transparent)]
#[derive(Clone, Copy)]
pub struct Str<'a> {
    ptr: StrPtr,
    _owner: PhantomData<&'a raw::RedisModuleString>,
}

impl<'a> Str<'a> {
    /// # Safety
    /// `ptr` must be NULL or a string that stays alive and unchanged for `'a`.
    pub(super) unsafe fn from_ptr(ptr: StrPtr) -> Self {
        Str {
            ptr,
            _owner: PhantomData,
        }
    }

    /// A command's argv as borrowed strings.
    ///
    /// # Safety
    /// `argv` must hold `argc` strings that stay alive for `'a` (a command's arguments do for
    /// the duration of the call).
    pub(super) unsafe fn argv(argv: *mut StrPtr, argc: std::ffi::c_int) -> &'a [Str<'a>] {
        match usize::try_from(argc) {
            // SAFETY: `Str` is `repr(transparent)` over `StrPtr`; the caller vouches for the
            // array and its lifetime.
            Ok(n) if !argv.is_null() => std::slice::from_raw_parts(argv.cast::<Str<'a>>(), n),
            _ => &[],
        }
    }

    pub(super) fn as_ptr(self) -> StrPtr {
        self.ptr
    }

    /// The bytes of the string (empty for a NULL string).
    pub fn bytes(self) -> &'a [u8] {
        let Some(f) = super::api!(RedisModule_StringPtrLen) else {
            return &[];
        };
        if self.ptr.is_null() {
            return &[];
        }
        let mut len = 0usize;
        // SAFETY: StringPtrLen returns a pointer into the string object and its length; the
        // string lives for `'a` (see `from_ptr`).
        unsafe { super::bytes_at(f(self.ptr, &mut len), len) }
    }
}

/// The pointers of `args`, for APIs that take a `RedisModuleString **`.
pub(super) fn ptrs<'a>(args: &'a [Str<'a>]) -> *mut StrPtr {
    // `Str` is `repr(transparent)` over `StrPtr`; the server only reads the array.
    args.as_ptr().cast::<StrPtr>().cast_mut()
}

/// A reference we own on a `RedisModuleString`: retained from a command's argv or created
/// here. Freed (reference dropped) on drop, without a context, which Redis allows for strings
/// that are not under automatic memory management. Not the crate's `RedisString`: its
/// `new` retains and frees through the context of the command that made it, and a queued
/// command's strings outlive that command (its `create` also panics on a NUL byte).
pub struct OwnedStr(NonNull<raw::RedisModuleString>);

// SAFETY: Redis runs module commands, events and timers on its main thread only; the global
// registries that hold these strings are only touched from there. `Send` is needed solely so
// the strings can sit in a `static` behind a mutex.
unsafe impl Send for OwnedStr {}

impl OwnedStr {
    /// Takes an extra reference on a string (a command argument), so it outlives the call.
    pub fn retain(s: Str<'_>) -> Option<Self> {
        let nn = NonNull::new(s.as_ptr())?;
        // SAFETY: `s` is alive (its borrow says so); RetainString takes one more reference and
        // a NULL context is allowed.
        unsafe {
            let f = raw::RedisModule_RetainString?;
            f(ptr::null_mut(), nn.as_ptr());
        }
        Some(OwnedStr(nn))
    }

    /// Creates a new string holding a copy of `bytes`.
    pub fn create(bytes: &[u8]) -> Option<Self> {
        // SAFETY: CreateString copies `len` bytes from `ptr`; a NULL context is allowed.
        unsafe {
            let f = raw::RedisModule_CreateString?;
            NonNull::new(f(ptr::null_mut(), bytes.as_ptr().cast(), bytes.len())).map(OwnedStr)
        }
    }

    /// Creates one string per element of `args`.
    pub fn create_all<B: AsRef<[u8]>>(args: &[B]) -> Option<Vec<OwnedStr>> {
        args.iter().map(|a| OwnedStr::create(a.as_ref())).collect()
    }

    /// Borrows the string for as long as this reference is held.
    pub fn as_str(&self) -> Str<'_> {
        // SAFETY: we hold a reference, so the string lives at least as long as `self`.
        unsafe { Str::from_ptr(self.0.as_ptr()) }
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.as_str().bytes()
    }

    /// Gives up our reference to a callee that takes ownership of it.
    pub(super) fn into_raw(self) -> StrPtr {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }

    /// Wraps a string the server handed us and whose reference is now ours.
    ///
    /// # Safety
    /// `p` must be NULL or a string we own one reference on.
    pub(super) unsafe fn from_owned_ptr(p: StrPtr) -> Option<Self> {
        NonNull::new(p).map(OwnedStr)
    }
}

/// Borrows every string of `owned`.
pub fn borrow_all(owned: &[OwnedStr]) -> Vec<Str<'_>> {
    owned.iter().map(OwnedStr::as_str).collect()
}

impl Drop for OwnedStr {
    fn drop(&mut self) {
        // SAFETY: we hold one reference on this string; a NULL context is allowed here.
        unsafe {
            if let Some(f) = raw::RedisModule_FreeString {
                f(ptr::null_mut(), self.0.as_ptr());
            }
        }
    }
}
