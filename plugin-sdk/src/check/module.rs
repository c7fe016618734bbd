//! Reads a module once into the facts the ABI rules need, so each rule is a small function
//! over plain data instead of another pass over the bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use wasmparser::{
    BinaryReaderError, ConstExpr, DataKind, ElementItems, ElementKind, Encoding, Export, ExternalKind, FuncType,
    FunctionBody, KnownCustom, MemoryType, Name, Operator, Parser, Payload, TableType, TypeRef, ValType,
};

use super::location::FunctionRef;
use super::operators;

/// What the rules need to know about a module, with byte offsets into the file.
#[derive(Debug, Default)]
pub(crate) struct ModuleInfo<'a> {
    /// The binary is a component, not a core module; nothing else is filled in.
    pub is_component: bool,
    /// Function types by type index; `None` for non-function (GC) types.
    pub types: Vec<Option<FuncType>>,
    pub imports: Vec<ImportInfo<'a>>,
    /// The type index of every function, imported ones first.
    pub function_types: Vec<u32>,
    pub imported_functions: u32,
    pub imported_tables: u32,
    pub imported_memories: u32,
    pub imported_globals: u32,
    /// Tables defined by the module, in order.
    pub tables: Vec<TableType>,
    /// Memories defined by the module, in order.
    pub memories: Vec<MemoryType>,
    /// Types of the globals defined by the module, in order.
    pub globals: Vec<ValType>,
    /// Whether each global the module defines is mutable, in the same order.
    pub globals_mutable: Vec<bool>,
    pub exports: Vec<Export<'a>>,
    /// The names each function is exported under, in export order: looked up for every
    /// function a rule mentions, so it is an index rather than a scan of `exports` (a module
    /// with many functions and many exports would otherwise cost their product).
    pub function_exports: BTreeMap<u32, Vec<&'a str>>,
    /// The value of each global the module defines, in order, where its initializer is a
    /// constant the checker can evaluate (see [`evaluate_const`]).
    pub global_values: Vec<Option<i64>>,
    /// Active data segments: copied into memory when the plugin is instantiated.
    pub data_segments: Vec<ActiveSegment>,
    /// Active element segments: copied into a table when the plugin is instantiated.
    pub element_segments: Vec<ActiveSegment>,
    pub start: Option<u32>,
    /// Functions whose index appears in an element segment: the only functions a
    /// `call_indirect` can reach.
    pub address_taken: BTreeSet<u32>,
    pub bodies: Vec<BodyInfo>,
    /// The code of each body in `bodies`, in the same order, for rules that read one
    /// function's instructions again (the v2 buffer functions).
    pub code: Vec<FunctionBody<'a>>,
    /// Function names from the `name` section.
    pub names: BTreeMap<u32, String>,
    /// Contents of every `wasm_plugin_abi` custom section, with their file offsets.
    pub abi_sections: Vec<(usize, &'a [u8])>,
    /// Every section's name and bytes, header included, in file order.
    pub sections: Vec<(&'static str, Range<usize>)>,
}

#[derive(Debug)]
pub(crate) struct ImportInfo<'a> {
    pub module: &'a str,
    pub name: &'a str,
    pub ty: TypeRef,
}

/// An active data or element segment: `length` items (bytes or table entries) copied to
/// memory or table `target` at `offset` when the module is instantiated.
#[derive(Debug)]
pub(crate) struct ActiveSegment {
    /// The segment's index among the module's data (or element) segments, passive ones included.
    pub index: u32,
    /// The memory or table index.
    pub target: u32,
    /// The offset expression's value as the unsigned 32-bit address it is, if the checker can
    /// evaluate it.
    pub offset: Option<u64>,
    pub length: u64,
    /// Where the segment starts in the file.
    pub file_offset: usize,
}

/// What one function body contains that the rules care about.
#[derive(Debug)]
pub(crate) struct BodyInfo {
    pub index: u32,
    /// Bytes of the body in the file.
    pub range: Range<usize>,
    /// How many local variables the body declares (parameters not included), and where the
    /// declarations are.
    pub locals: (u64, usize),
    /// The deepest nesting of blocks (`block`, `loop`, `if`) in the body, and the offset of
    /// the first instruction that reaches it.
    pub nesting: (u32, usize),
    /// Each float type among the locals, once, with the offset of its declaration.
    pub float_locals: Vec<(ValType, usize)>,
    /// Each distinct floating-point instruction, at its first occurrence.
    pub float_ops: Vec<(String, usize)>,
    /// The first `memory.grow`, if any.
    pub memory_grow: Option<usize>,
    /// Every call, in order.
    pub calls: Vec<(Callee, usize)>,
}

/// What a call instruction calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Callee {
    /// `call`/`return_call`: this function index.
    Direct(u32),
    /// `call_indirect` and friends: some function of this type index.
    Indirect(u32),
}

/// Offsets in wasmparser are `u64`; in a slice that was successfully read they fit `usize`.
pub(crate) fn to_usize(offset: u64) -> usize {
    usize::try_from(offset).unwrap_or(usize::MAX)
}

impl<'a> ModuleInfo<'a> {
    /// Reads `wasm`, which must already have passed validation (so indices are in range and
    /// every section decodes), into facts. Errors are still returned rather than assumed away.
    pub(crate) fn parse(wasm: &'a [u8]) -> Result<Self, BinaryReaderError> {
        let mut info = ModuleInfo::default();
        for payload in Parser::new(0).parse_all(wasm) {
            let payload = payload?;
            if let Some((id, range)) = payload.as_section() {
                // Sections follow each other, so each one's header starts where the previous
                // one ends (or after the 8-byte preamble).
                let start = info.sections.last().map_or(8, |(_, previous)| previous.end);
                info.sections.push((section_name(id), start..to_usize(range.end)));
            }
            match payload {
                Payload::Version { encoding: Encoding::Component, .. } => {
                    info.is_component = true;
                    return Ok(info);
                }
                Payload::TypeSection(reader) => {
                    for group in reader {
                        for sub in group?.into_types() {
                            info.types.push(match sub.composite_type.inner {
                                wasmparser::CompositeInnerType::Func(ty) => Some(ty),
                                _ => None,
                            });
                        }
                    }
                }
                Payload::ImportSection(reader) => {
                    for import in reader.into_imports() {
                        let import = import?;
                        match import.ty {
                            TypeRef::Func(ty) | TypeRef::FuncExact(ty) => {
                                info.function_types.push(ty);
                                info.imported_functions += 1;
                            }
                            TypeRef::Table(_) => info.imported_tables += 1,
                            TypeRef::Memory(_) => info.imported_memories += 1,
                            TypeRef::Global(_) => info.imported_globals += 1,
                            TypeRef::Tag(_) => {}
                        }
                        info.imports.push(ImportInfo { module: import.module, name: import.name, ty: import.ty });
                    }
                }
                Payload::FunctionSection(reader) => {
                    for ty in reader {
                        info.function_types.push(ty?);
                    }
                }
                Payload::TableSection(reader) => {
                    for table in reader {
                        info.tables.push(table?.ty);
                    }
                }
                Payload::MemorySection(reader) => {
                    for memory in reader {
                        info.memories.push(memory?);
                    }
                }
                Payload::GlobalSection(reader) => {
                    for global in reader {
                        let global = global?;
                        info.globals.push(global.ty.content_type);
                        info.globals_mutable.push(global.ty.mutable);
                        let value = evaluate_const(&global.init_expr, &info.global_values);
                        info.global_values.push(value);
                    }
                }
                Payload::ExportSection(reader) => {
                    for export in reader {
                        let export = export?;
                        if matches!(export.kind, ExternalKind::Func | ExternalKind::FuncExact) {
                            info.function_exports.entry(export.index).or_default().push(export.name);
                        }
                        info.exports.push(export);
                    }
                }
                Payload::DataSection(reader) => {
                    for (index, data) in (0u32..).zip(reader) {
                        let data = data?;
                        if let DataKind::Active { memory_index, offset_expr } = data.kind {
                            info.data_segments.push(ActiveSegment {
                                index,
                                target: memory_index,
                                offset: evaluate_const(&offset_expr, &info.global_values).map(as_address),
                                length: data.data.len() as u64,
                                file_offset: to_usize(data.range.start),
                            });
                        }
                    }
                }
                Payload::StartSection { func, .. } => info.start = Some(func),
                Payload::ElementSection(reader) => {
                    for (index, element) in (0u32..).zip(reader) {
                        let element = element?;
                        if let ElementKind::Active { table_index, offset_expr } = &element.kind {
                            let length = match &element.items {
                                ElementItems::Functions(indices) => indices.count(),
                                ElementItems::Expressions(_, exprs) => exprs.count(),
                            };
                            info.element_segments.push(ActiveSegment {
                                index,
                                // The MVP encoding leaves the table implicit: table 0.
                                target: table_index.unwrap_or(0),
                                offset: evaluate_const(offset_expr, &info.global_values).map(as_address),
                                length: u64::from(length),
                                file_offset: to_usize(element.range.start),
                            });
                        }
                        match element.items {
                            ElementItems::Functions(indices) => {
                                for index in indices {
                                    info.address_taken.insert(index?);
                                }
                            }
                            ElementItems::Expressions(_, exprs) => {
                                for expr in exprs {
                                    let mut ops = expr?.get_operators_reader();
                                    while !ops.eof() {
                                        if let Operator::RefFunc { function_index } = ops.read()? {
                                            info.address_taken.insert(function_index);
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                Payload::CodeSectionEntry(body) => {
                    let defined = u32::try_from(info.bodies.len()).unwrap_or(u32::MAX);
                    let index = info.imported_functions.saturating_add(defined);
                    info.bodies.push(read_body(index, &body)?);
                    info.code.push(body);
                }
                Payload::CustomSection(reader) => {
                    if reader.name() == crate::CUSTOM_SECTION {
                        info.abi_sections.push((to_usize(reader.data_offset()), reader.data()));
                    } else if let KnownCustom::Name(names) = reader.as_known() {
                        // The name section only makes messages friendlier, and custom sections
                        // are not validated, so a damaged one is ignored rather than reported.
                        let _ = read_function_names(names, &mut info.names);
                    }
                }
                _ => {}
            }
        }
        Ok(info)
    }

    /// The function with this index, named from the `name` section or, failing that, from
    /// its first export.
    pub(crate) fn function(&self, index: u32) -> FunctionRef {
        let name =
            self.names.get(&index).cloned().or_else(|| {
                self.function_exports.get(&index).and_then(|names| names.first()).map(|&name| name.to_owned())
            });
        FunctionRef { index, name }
    }

    /// The names the function with this index is exported under.
    pub(crate) fn export_names(&self, index: u32) -> &[&'a str] {
        self.function_exports.get(&index).map_or(&[], Vec::as_slice)
    }

    /// The function type of the function with this index, if it has one.
    pub(crate) fn function_type(&self, index: u32) -> Option<&FuncType> {
        let ty = *self.function_types.get(usize::try_from(index).ok()?)?;
        self.type_at(ty)
    }

    /// The function type at this type index, if it is one.
    pub(crate) fn type_at(&self, ty: u32) -> Option<&FuncType> {
        self.types.get(usize::try_from(ty).ok()?)?.as_ref()
    }

    /// The name of the section containing this file offset, if any.
    pub(crate) fn section_at(&self, offset: usize) -> Option<&'static str> {
        self.sections.iter().find(|(_, range)| range.contains(&offset)).map(|(name, _)| *name)
    }

    /// The code of the function with this index, if the module defines it.
    pub(crate) fn code_of(&self, index: u32) -> Option<&FunctionBody<'a>> {
        let defined = index.checked_sub(self.imported_functions)?;
        self.code.get(usize::try_from(defined).ok()?)
    }

    /// The function whose body contains this file offset, if any.
    pub(crate) fn body_at(&self, offset: usize) -> Option<&BodyInfo> {
        self.bodies.iter().find(|body| body.range.contains(&offset))
    }
}

/// The name of a core module section by id, as the specification calls it.
fn section_name(id: u8) -> &'static str {
    match id {
        0 => "custom",
        1 => "type",
        2 => "import",
        3 => "function",
        4 => "table",
        5 => "memory",
        6 => "global",
        7 => "export",
        8 => "start",
        9 => "element",
        10 => "code",
        11 => "data",
        12 => "data count",
        13 => "tag",
        _ => "unknown",
    }
}

fn read_body(index: u32, body: &FunctionBody<'_>) -> Result<BodyInfo, BinaryReaderError> {
    let mut locals = body.get_locals_reader()?;
    let mut info = BodyInfo {
        index,
        range: to_usize(body.range().start)..to_usize(body.range().end),
        locals: (0, to_usize(locals.original_position())),
        nesting: (0, 0),
        float_locals: Vec::new(),
        float_ops: Vec::new(),
        memory_grow: None,
        calls: Vec::new(),
    };
    for _ in 0..locals.get_count() {
        let offset = to_usize(locals.original_position());
        let (count, ty) = locals.read()?;
        info.locals.0 += u64::from(count);
        if operators::is_float(&ty) && !info.float_locals.iter().any(|(seen, _)| *seen == ty) {
            info.float_locals.push((ty, offset));
        }
    }
    let mut ops = body.get_operators_reader()?;
    let mut depth: u32 = 0;
    while !ops.eof() {
        let (op, offset) = ops.read_with_offset()?;
        let offset = to_usize(offset);
        match op {
            Operator::Block { .. }
            | Operator::Loop { .. }
            | Operator::If { .. }
            | Operator::Try { .. }
            | Operator::TryTable { .. } => {
                depth = depth.saturating_add(1);
                if depth > info.nesting.0 {
                    info.nesting = (depth, offset);
                }
            }
            Operator::End => depth = depth.saturating_sub(1),
            Operator::Call { function_index } | Operator::ReturnCall { function_index } => {
                info.calls.push((Callee::Direct(function_index), offset));
            }
            Operator::CallIndirect { type_index, .. }
            | Operator::ReturnCallIndirect { type_index, .. }
            | Operator::CallRef { type_index }
            | Operator::ReturnCallRef { type_index } => {
                info.calls.push((Callee::Indirect(type_index), offset));
            }
            Operator::MemoryGrow { .. } => {
                info.memory_grow.get_or_insert(offset);
            }
            _ => {}
        }
        if let Some(name) = operators::float_use(&op) {
            if !info.float_ops.iter().any(|(seen, _)| *seen == name) {
                info.float_ops.push((name, offset));
            }
        }
    }
    ops.finish()?;
    Ok(info)
}

/// The value of a constant expression (a global's initializer, a segment's offset) of type
/// `i32` or `i64`, or `None` if it uses anything but constants, globals with a known value and
/// the extended-const arithmetic. Arithmetic wraps as WebAssembly's does; an `i32` is kept
/// sign-extended, as `i32.const` writes it.
pub(crate) fn evaluate_const(expr: &ConstExpr<'_>, globals: &[Option<i64>]) -> Option<i64> {
    let mut stack: Vec<i64> = Vec::new();
    let mut reader = expr.get_operators_reader();
    while !reader.eof() {
        let op = reader.read().ok()?;
        let value = match op {
            Operator::I32Const { value } => i64::from(value),
            Operator::I64Const { value } => value,
            Operator::GlobalGet { global_index } => *globals.get(usize::try_from(global_index).ok()?)?.as_ref()?,
            Operator::I32Add | Operator::I32Sub | Operator::I32Mul => {
                let (right, left) = (stack.pop()? as i32, stack.pop()? as i32);
                i64::from(match op {
                    Operator::I32Add => left.wrapping_add(right),
                    Operator::I32Sub => left.wrapping_sub(right),
                    _ => left.wrapping_mul(right),
                })
            }
            Operator::I64Add | Operator::I64Sub | Operator::I64Mul => {
                let (right, left) = (stack.pop()?, stack.pop()?);
                match op {
                    Operator::I64Add => left.wrapping_add(right),
                    Operator::I64Sub => left.wrapping_sub(right),
                    _ => left.wrapping_mul(right),
                }
            }
            Operator::End => break,
            _ => return None,
        };
        stack.push(value);
    }
    match stack.as_slice() {
        [value] => Some(*value),
        _ => None,
    }
}

/// A 32-bit offset (kept sign-extended by [`evaluate_const`]) as the unsigned address it is.
fn as_address(value: i64) -> u64 {
    u64::from(value as u32)
}

fn read_function_names(
    reader: wasmparser::NameSectionReader<'_>,
    names: &mut BTreeMap<u32, String>,
) -> Result<(), BinaryReaderError> {
    for subsection in reader {
        if let Name::Function(map) = subsection? {
            for naming in map {
                let naming = naming?;
                names.insert(naming.index, naming.name.to_owned());
            }
        }
    }
    Ok(())
}
