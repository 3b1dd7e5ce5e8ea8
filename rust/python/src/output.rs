//! The new numpy arrays that reads fill: made here, in one place, so that every read's output
//! starts on a page boundary and gets the engine's choice of memory pages
//! (`oxzarr_core::pages`) before it is written.
//!
//! numpy allocates an array's data with `malloc`, which places a large block 16 bytes past a
//! page (glibc's header of a mapped block): every 64-byte run of the array then straddles two
//! cache lines, and the rows a read copies out of each chunk write partial lines at both ends.
//! Reads of 256 MiB into page-aligned outputs, against the same outputs 16 bytes past a page
//! (release build, 16 of each, medians): uncompressed 64³ chunks 172 against 197 ms, blosc
//! 208 against 242 ms, zstd 64³ 497 against 511 ms. So outputs of [`ALIGNED_MIN`] bytes or
//! more are allocated through numpy's own hook for this (NEP 49, a `PyDataMem_Handler` set
//! for the one call that makes the array): the array owns its data as any other does
//! (`resize` works), and numpy frees it through the same handler. Where the caller has set a
//! handler of their own, outputs are made with theirs.

use numpy::npyffi::{npy_intp, NpyTypes, PY_ARRAY_API};
use numpy::{PyArrayDescr, PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use std::os::raw::{c_char, c_int, c_void};

/// Outputs of this many bytes or more start on a page boundary. Smaller ones come from numpy's
/// allocator as before: they are seldom copied into row by row, and aligning them would spread
/// them over more of the heap.
const ALIGNED_MIN: usize = 256 << 10;

/// The boundary the large outputs start on: a page (4 KiB, or a multiple of it), which is a
/// multiple of every cache line's length.
const ALIGNMENT: usize = 4096;

/// numpy's `PyDataMemAllocator` (numpy/ndarraytypes.h, NEP 49).
#[repr(C)]
struct DataMemAllocator {
    ctx: *mut c_void,
    malloc: unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void,
    calloc: unsafe extern "C" fn(*mut c_void, usize, usize) -> *mut c_void,
    realloc: unsafe extern "C" fn(*mut c_void, *mut c_void, usize) -> *mut c_void,
    free: unsafe extern "C" fn(*mut c_void, *mut c_void, usize),
}

/// numpy's `PyDataMem_Handler`: a name, the version of the layout (1), the allocator.
#[repr(C)]
struct DataMemHandler {
    name: [c_char; 127],
    version: u8,
    allocator: DataMemAllocator,
}

/// The handler, shared by every array made with it, so it lives as long as the module.
struct Handler(DataMemHandler);

// SAFETY: the handler is never written to; its context pointer is null and unused.
unsafe impl Sync for Handler {}

const fn handler_name(name: &[u8]) -> [c_char; 127] {
    let mut out = [0 as c_char; 127];
    let mut i = 0;
    while i < name.len() && i < 126 {
        out[i] = name[i] as c_char;
        i += 1;
    }
    out
}

static HANDLER: Handler = Handler(DataMemHandler {
    name: handler_name(b"oxzarr_page_aligned"),
    version: 1,
    allocator: DataMemAllocator {
        ctx: std::ptr::null_mut(),
        malloc: page_aligned_malloc,
        calloc: page_aligned_calloc,
        realloc: page_aligned_realloc,
        free: page_aligned_free,
    },
});

// Each block the handler hands out is carved from a plain `malloc` block a page and a header
// longer than asked for: it starts at the first page boundary past the header, 16 bytes that
// hold the `malloc` block's address and the size asked for. Not `posix_memalign`: glibc maps
// a fresh region for every page-aligned request above the size from which plain blocks come
// from the heap, and never raises that size for such requests, so each read of 256 KiB to
// 32 MiB mapped, faulted in and unmapped its output. A plain block of a steady size comes back
// from the heap after the first, as numpy's own arrays do.

/// The bytes before a block that hold its header.
const HEADER: usize = 16;

/// The bytes a `malloc` block has beyond the block carved from it: room for the header and for
/// moving to the next page boundary from any address.
const PADDING: usize = HEADER + ALIGNMENT;

/// The `malloc` block `raw` of `size + PADDING` bytes, made into a block of `size` bytes on a
/// page boundary with its header written; null for a null `raw`.
///
/// # Safety
/// `raw` is null or a block from `malloc`/`calloc` of at least `size + PADDING` bytes.
unsafe fn carve(raw: *mut c_void, size: usize) -> *mut c_void {
    if raw.is_null() {
        return raw;
    }
    // The boundary is at least HEADER bytes in, so the header fits before it, and less than
    // PADDING bytes in, so `size` bytes fit after it.
    let offset = (raw as usize + HEADER).next_multiple_of(ALIGNMENT) - raw as usize;
    // SAFETY: `offset + size < PADDING + size` bytes of `raw` are ours, and the header's two
    // words lie in them, 8-byte aligned since the block starts on a page.
    unsafe {
        let block = raw.cast::<u8>().add(offset);
        block.cast::<*mut c_void>().sub(2).write(raw);
        block.cast::<usize>().sub(1).write(size);
        block.cast()
    }
}

/// A block's header: the `malloc` block it was carved from, and its size.
///
/// # Safety
/// `block` came from [`carve`] and has not been freed.
unsafe fn header(block: *mut c_void) -> (*mut c_void, usize) {
    // SAFETY: `carve` wrote the two words before the block.
    unsafe {
        let raw = block.cast::<*mut c_void>().sub(2).read();
        (raw, block.cast::<usize>().sub(1).read())
    }
}

/// `malloc` on a page boundary.
unsafe extern "C" fn page_aligned_malloc(_ctx: *mut c_void, size: usize) -> *mut c_void {
    let Some(padded) = size.checked_add(PADDING) else {
        return std::ptr::null_mut();
    };
    // SAFETY: plain malloc of `padded` bytes, carved as `carve` requires; numpy checks for null.
    unsafe { carve(libc::malloc(padded), size) }
}

/// `calloc` on a page boundary: the whole `malloc` block is zeroed, the header written after.
unsafe extern "C" fn page_aligned_calloc(
    _ctx: *mut c_void,
    count: usize,
    size: usize,
) -> *mut c_void {
    let Some(size) = count.checked_mul(size) else {
        return std::ptr::null_mut();
    };
    let Some(padded) = size.checked_add(PADDING) else {
        return std::ptr::null_mut();
    };
    // SAFETY: plain calloc of `padded` bytes, carved as `carve` requires.
    unsafe { carve(libc::calloc(1, padded), size) }
}

/// `realloc` as a new block with the old one's bytes (as many as both hold), the old one
/// freed; on failure the old block is left as it was, as `realloc` leaves it.
unsafe extern "C" fn page_aligned_realloc(
    ctx: *mut c_void,
    block: *mut c_void,
    size: usize,
) -> *mut c_void {
    // SAFETY: a new block as from malloc.
    let moved = unsafe { page_aligned_malloc(ctx, size) };
    if block.is_null() || moved.is_null() {
        return moved;
    }
    // SAFETY: numpy frees and grows an array's data through the handler that made it, so
    // `block` came from this handler and holds `old` bytes; `moved` holds `size`.
    unsafe {
        let (_, old) = header(block);
        std::ptr::copy_nonoverlapping(block.cast::<u8>(), moved.cast::<u8>(), old.min(size));
        page_aligned_free(ctx, block, old);
    }
    moved
}

unsafe extern "C" fn page_aligned_free(_ctx: *mut c_void, block: *mut c_void, _size: usize) {
    if block.is_null() {
        return;
    }
    // SAFETY: as for realloc: the block came from this handler, carved from a malloc block.
    unsafe { libc::free(header(block).0) }
}

/// The handler as numpy takes it: a capsule named "mem_handler".
fn handler_capsule(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static CAPSULE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    CAPSULE
        .get_or_try_init(py, || {
            // SAFETY: the pointer is to a static that is never written to; the name is a C
            // string that lives as long as the program; no destructor.
            unsafe {
                let capsule = pyo3::ffi::PyCapsule_New(
                    std::ptr::from_ref(&HANDLER.0).cast_mut().cast(),
                    c"mem_handler".as_ptr(),
                    None,
                );
                Bound::from_owned_ptr_or_err(py, capsule).map(Bound::unbind)
            }
        })
        .map(|capsule| capsule.bind(py))
}

/// Whether the caller's context allocates with numpy's default handler. A user may have set
/// their own (to track memory, or to place it): theirs is left in force.
fn default_handler_in_force(py: Python<'_>) -> PyResult<bool> {
    // SAFETY: GetHandler returns a new reference to the context's handler capsule (null, an
    // exception set, on failure); numpy accepts only capsules named "mem_handler", whose
    // pointer is to a `PyDataMem_Handler` with a NUL-terminated name.
    unsafe {
        let current = PY_ARRAY_API.PyDataMem_GetHandler(py);
        let current = Bound::from_owned_ptr_or_err(py, current)?;
        let handler = pyo3::ffi::PyCapsule_GetPointer(current.as_ptr(), c"mem_handler".as_ptr());
        if handler.is_null() {
            return Err(PyErr::fetch(py));
        }
        let name = std::ffi::CStr::from_ptr((*handler.cast::<DataMemHandler>()).name.as_ptr());
        Ok(name == c"default_allocator")
    }
}

/// Whether numpy asks for huge pages for its own large arrays (its `_set_madvise_hugepage`;
/// on by default), which the outputs' handler would otherwise leave out.
fn numpy_advises_huge_pages(py: Python<'_>) -> PyResult<bool> {
    static GET: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let get = GET.get_or_try_init(py, || {
        // numpy 2 renamed numpy.core to numpy._core; numpy 1.26 has only the old name.
        let module = py
            .import("numpy._core.multiarray")
            .or_else(|_| py.import("numpy.core.multiarray"))?;
        Ok::<_, PyErr>(module.getattr("_get_madvise_hugepage")?.unbind())
    })?;
    get.bind(py).call0()?.is_truthy()
}

/// A new array of `dtype` and shape `dims`, C order (F order with `fortran`), its bytes
/// handed to `fill` (which may release the GIL: nothing else can reach them before the array
/// is returned).
pub(crate) fn new_output<'py>(
    py: Python<'py>,
    dtype: Bound<'py, PyArrayDescr>,
    dims: &mut [npy_intp],
    fortran: bool,
    fill: impl FnOnce(&mut [u8]) -> PyResult<()>,
) -> PyResult<Bound<'py, PyUntypedArray>> {
    let itemsize = dtype.itemsize();
    let nbytes = dims
        .iter()
        .try_fold(itemsize, |n, &d| n.checked_mul(usize::try_from(d).ok()?));
    let aligned = nbytes.is_some_and(|n| n >= ALIGNED_MIN) && default_handler_in_force(py)?;
    // For a large output, numpy's allocator for this context is ours for this one call.
    // SAFETY: SetHandler takes a capsule named "mem_handler" and returns a new reference to
    // the handler it replaces (null, an exception set, on failure).
    let previous = if aligned {
        let handler = handler_capsule(py)?;
        Some(unsafe {
            let previous = PY_ARRAY_API.PyDataMem_SetHandler(py, handler.as_ptr());
            Bound::from_owned_ptr_or_err(py, previous)?
        })
    } else {
        None
    };
    // SAFETY: NewFromDescr takes the reference `into_dtype_ptr` hands over; `dims` holds
    // `dims.len()` lengths, and null strides and data make numpy allocate the array (in F
    // order for nonzero flags); the result is checked for null (numpy raises MemoryError when
    // it cannot).
    let made = unsafe {
        PY_ARRAY_API.PyArray_NewFromDescr(
            py,
            PY_ARRAY_API.get_type_object(py, NpyTypes::PyArray_Type),
            dtype.into_dtype_ptr(),
            dims.len() as c_int,
            dims.as_mut_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            c_int::from(fortran),
            std::ptr::null_mut(),
        )
    };
    // SAFETY: the array (or null and the exception) is taken first, so that restoring the
    // handler cannot lose it; SetHandler as above.
    let out = unsafe {
        let out = Bound::from_owned_ptr_or_err(py, made);
        if let Some(previous) = previous {
            let ours = PY_ARRAY_API.PyDataMem_SetHandler(py, previous.as_ptr());
            Bound::from_owned_ptr_or_err(py, ours)?;
        }
        out?.cast_into_unchecked::<PyUntypedArray>()
    };
    // SAFETY: the new array owns `len() * itemsize` bytes and nothing else can reach them yet.
    let data = unsafe {
        std::slice::from_raw_parts_mut(
            (*out.as_array_ptr()).data.cast::<u8>(),
            out.len() * itemsize,
        )
    };
    // numpy's default allocator, which ours stands in for, advises huge pages itself.
    let huge_by_default =
        aligned && data.len() >= oxzarr_core::pages::MIN_BYTES && numpy_advises_huge_pages(py)?;
    oxzarr_core::pages::prepare_output(data, huge_by_default);
    fill(data)?;
    Ok(out)
}

/// `numpy.empty(shape, dtype, order="F" if fortran else "C")` for a read to fill (the Python
/// layer's outputs).
#[pyfunction]
#[pyo3(signature = (shape, dtype, fortran = false))]
pub(crate) fn empty_output<'py>(
    py: Python<'py>,
    shape: Vec<usize>,
    dtype: Bound<'py, PyArrayDescr>,
    fortran: bool,
) -> PyResult<Bound<'py, PyUntypedArray>> {
    // Axes of a Zarr array may be longer than numpy's (2**63 - 1): a ValueError, as numpy's
    // own for such a shape.
    let mut dims = shape
        .iter()
        .map(|&n| npy_intp::try_from(n))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| {
            pyo3::exceptions::PyValueError::new_err(format!(
                "an output of shape {shape:?} has more elements along an axis than numpy \
                 holds (at most 2**63 - 1)"
            ))
        })?;
    new_output(py, dtype, &mut dims, fortran, |_| Ok(()))
}

/// The allocator that large outputs are made with, as numpy's `mem_handler` capsule: for tests
/// of it through numpy (`PyDataMem_SetHandler`), as no read makes arrays with it zeroed or
/// shrinks them.
#[pyfunction]
pub(crate) fn output_allocator(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    handler_capsule(py).cloned()
}

/// Sets whether outputs may use huge pages: `None` (the default) avoids them where the host
/// takes free memory back, `True` leaves numpy's choice, `False` avoids them always.
#[pyfunction]
pub(crate) fn set_output_huge_pages(allowed: Option<bool>) {
    use oxzarr_core::pages::{set_policy, HugePages};
    set_policy(match allowed {
        None => HugePages::Auto,
        Some(true) => HugePages::Allowed,
        Some(false) => HugePages::Avoided,
    });
}

/// Whether this machine's balloon device reports free memory to the host.
#[pyfunction]
pub(crate) fn host_reclaims_free_memory() -> bool {
    oxzarr_core::pages::host_reclaims_free_memory()
}
