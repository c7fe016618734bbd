//! Reads a module once into the facts the ABI rules need, so each rule is a small function
//! over plain data instead of another pass over the bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use wasmparser::{
    BinaryReaderError, ElementItems, Encoding, Export, FuncType, KnownCustom, MemoryType, Name, Operator, Parser,
    Payload, TableType, TypeRef, ValType,
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
    pub exports: Vec<Export<'a>>,
    pub start: Option<u32>,
    /// Functions whose index appears in an element segment: the only functions a
    /// `call_indirect` can reach.
    pub address_taken: BTreeSet<u32>,
    pub bodies: Vec<BodyInfo>,
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

/// What one function body contains that the rules care about.
#[derive(Debug)]
pub(crate) struct BodyInfo {
    pub index: u32,
    /// Bytes of the body in the file.
    pub range: Range<usize>,
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
                        info.globals.push(global?.ty.content_type);
                    }
                }
                Payload::ExportSection(reader) => {
                    for export in reader {
                        info.exports.push(export?);
                    }
                }
                Payload::StartSection { func, .. } => info.start = Some(func),
                Payload::ElementSection(reader) => {
                    for element in reader {
                        match element?.items {
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
        let name = self.names.get(&index).cloned().or_else(|| {
            self.exports
                .iter()
                .find(|export| matches!(export.kind, wasmparser::ExternalKind::Func) && export.index == index)
                .map(|export| export.name.to_owned())
        });
        FunctionRef { index, name }
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

fn read_body(index: u32, body: &wasmparser::FunctionBody<'_>) -> Result<BodyInfo, BinaryReaderError> {
    let mut info = BodyInfo {
        index,
        range: to_usize(body.range().start)..to_usize(body.range().end),
        float_locals: Vec::new(),
        float_ops: Vec::new(),
        memory_grow: None,
        calls: Vec::new(),
    };
    let mut locals = body.get_locals_reader()?;
    for _ in 0..locals.get_count() {
        let offset = to_usize(locals.original_position());
        let (_, ty) = locals.read()?;
        if operators::is_float(&ty) && !info.float_locals.iter().any(|(seen, _)| *seen == ty) {
            info.float_locals.push((ty, offset));
        }
    }
    let mut ops = body.get_operators_reader()?;
    while !ops.eof() {
        let (op, offset) = ops.read_with_offset()?;
        let offset = to_usize(offset);
        match op {
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
