//! Finds recursion: builds the module's call graph and reports cycles in it, in time linear in
//! the module.
//!
//! See [`AbiViolation::Recursion`](super::AbiViolation::Recursion) for why recursion is
//! refused and how indirect calls are resolved.
//!
//! An indirect call may reach every address-taken function of its type, so drawing an edge
//! from each `call_indirect` to each such function costs calls times functions: a 61 KB module
//! of many indirect calls made a quadratic check take over a second. Instead each function type
//! that is called indirectly gets one extra node, a *hub*: a function calling through a pointer
//! of type `T` has one edge to `T`'s hub, and the hub has one edge to every address-taken
//! function of type `T`. The graph then has as many edges as the module has call
//! instructions and table entries, and every step below (Tarjan's strongly connected
//! components, then a bounded number of breadth-first searches for the cycles to report) is
//! linear in it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use wasmparser::FuncType;

use super::module::{Callee, ModuleInfo};

/// Most cycles reported for one module. Each is found by a search linear in the module, so the
/// bound keeps the whole check linear; a plugin author fixes the first ones and checks again.
pub(crate) const MAX_REPORTED_CYCLES: usize = 32;

/// A cycle of calls: function indices in call order (the first is not repeated at the end),
/// and the file offset of the call from the first function to the second (or to itself).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Cycle {
    pub functions: Vec<u32>,
    pub offset: usize,
}

/// The call graph over defined functions (nodes `0..functions.len()`) and hubs (the nodes
/// after them, one per function type called indirectly).
struct CallGraph {
    /// Function index of each function node.
    functions: Vec<u32>,
    /// Successors of every node (functions and hubs), ascending and without duplicates.
    successors: Vec<Vec<usize>>,
    /// For each function node, its calls in order: the node each call leads to (a function or
    /// a hub) and the instruction's offset.
    calls: Vec<Vec<(usize, usize)>>,
    /// Edges followed so far, by every search on this graph: what the tests count to show the
    /// work is linear.
    work: u64,
}

impl CallGraph {
    fn build(module: &ModuleInfo<'_>) -> Self {
        let function_count = module.bodies.len();
        let node_of: HashMap<u32, usize> =
            module.bodies.iter().enumerate().map(|(node, body)| (body.index, node)).collect();
        // `call_indirect` checks the callee's type structurally, so two type indices with the
        // same signature are one type here. Each type index gets the index of its first equal.
        let mut canonical_of: HashMap<&FuncType, u32> = HashMap::new();
        let canonical: Vec<Option<u32>> = (0u32..)
            .zip(&module.types)
            .map(|(index, ty)| ty.as_ref().map(|ty| *canonical_of.entry(ty).or_insert(index)))
            .collect();
        let canonical_type = |ty: u32| usize::try_from(ty).ok().and_then(|ty| canonical.get(ty).copied().flatten());

        let mut hub_of: BTreeMap<u32, usize> = BTreeMap::new();
        let mut calls = Vec::with_capacity(function_count);
        for body in &module.bodies {
            let mut out = Vec::with_capacity(body.calls.len());
            for &(callee, offset) in &body.calls {
                let target = match callee {
                    Callee::Direct(index) => node_of.get(&index).copied(),
                    Callee::Indirect(ty) => canonical_type(ty).map(|ty| {
                        let next = function_count + hub_of.len();
                        *hub_of.entry(ty).or_insert(next)
                    }),
                };
                if let Some(target) = target {
                    out.push((target, offset));
                }
            }
            calls.push(out);
        }

        let mut successors: Vec<Vec<usize>> = calls
            .iter()
            .map(|out| {
                let mut targets: Vec<usize> = out.iter().map(|&(target, _)| target).collect();
                targets.sort_unstable();
                targets.dedup();
                targets
            })
            .collect();
        successors.resize(function_count + hub_of.len(), Vec::new());
        // ABI v1 has no instructions that change tables at run time, so element segments are
        // the only way into a table, and `address_taken` (ascending) is every possible target.
        for &index in &module.address_taken {
            let ty = module.function_types.get(usize::try_from(index).unwrap_or(usize::MAX)).copied();
            let hub = ty.and_then(canonical_type).and_then(|ty| hub_of.get(&ty));
            if let (Some(&hub), Some(&node)) = (hub, node_of.get(&index)) {
                successors[hub].push(node);
            }
        }
        CallGraph { functions: module.bodies.iter().map(|body| body.index).collect(), successors, calls, work: 0 }
    }

    fn is_function(&self, node: usize) -> bool {
        node < self.functions.len()
    }

    /// Strongly connected components (Tarjan's algorithm), iteratively so that a module with
    /// a very deep call chain cannot overflow the checker's own stack. Returns each node's
    /// component number.
    fn components(&mut self) -> Vec<usize> {
        const UNVISITED: usize = usize::MAX;
        let n = self.successors.len();
        let mut index = vec![UNVISITED; n];
        let mut low = vec![0; n];
        let mut on_stack = vec![false; n];
        let mut component = vec![UNVISITED; n];
        let mut stack = Vec::new();
        let mut next = 0;
        let mut components = 0;

        for root in 0..n {
            if index[root] != UNVISITED {
                continue;
            }
            let mut work = vec![(root, 0)];
            index[root] = next;
            low[root] = next;
            next += 1;
            stack.push(root);
            on_stack[root] = true;
            while let Some(&mut (node, ref mut position)) = work.last_mut() {
                if let Some(&succ) = self.successors[node].get(*position) {
                    *position += 1;
                    self.work += 1;
                    if index[succ] == UNVISITED {
                        index[succ] = next;
                        low[succ] = next;
                        next += 1;
                        stack.push(succ);
                        on_stack[succ] = true;
                        work.push((succ, 0));
                    } else if on_stack[succ] {
                        low[node] = low[node].min(index[succ]);
                    }
                    continue;
                }
                work.pop();
                if let Some(&(parent, _)) = work.last() {
                    low[parent] = low[parent].min(low[node]);
                }
                if low[node] == index[node] {
                    while let Some(member) = stack.pop() {
                        on_stack[member] = false;
                        component[member] = components;
                        if member == node {
                            break;
                        }
                    }
                    components += 1;
                }
            }
        }
        component
    }

    /// The shortest cycle of calls from function `start` back to itself that stays inside its
    /// component, as function nodes (hubs left out), or `None` if there is none.
    ///
    /// A breadth-first search over functions, where a function's neighbours are its direct
    /// callees and, through each hub it calls, the hub's functions. A hub is opened once: every
    /// function behind it is then reached at the same distance, so a later caller of the same
    /// hub could not reach any of them sooner. That keeps the search linear in the graph.
    fn shortest_cycle(&mut self, start: usize, component: &[usize]) -> Option<Vec<usize>> {
        let inside = |node: usize| component[node] == component[start];
        let mut parent: HashMap<usize, usize> = HashMap::new();
        // Sets rather than arrays over all nodes: a search from a function that is not
        // recursive must cost what its own calls cost, not the size of the module.
        let mut opened: HashSet<usize> = HashSet::new();
        let mut queue = VecDeque::from([start]);
        while let Some(node) = queue.pop_front() {
            let mut targets = Vec::new();
            for &succ in &self.successors[node] {
                self.work += 1;
                if self.is_function(succ) {
                    targets.push(succ);
                } else if inside(succ) && opened.insert(succ) {
                    self.work += self.successors[succ].len() as u64;
                    targets.extend_from_slice(&self.successors[succ]);
                }
            }
            // In ascending order, so that among equally short cycles the one through the
            // lowest-numbered functions is reported, whichever way the calls are made.
            targets.sort_unstable();
            targets.dedup();
            for succ in targets {
                if succ == start {
                    let mut path = vec![node];
                    while let Some(&previous) = path.last().and_then(|last| parent.get(last)) {
                        path.push(previous);
                    }
                    path.reverse();
                    return Some(path);
                }
                if inside(succ) && !parent.contains_key(&succ) {
                    parent.insert(succ, node);
                    queue.push_back(succ);
                }
            }
        }
        None
    }

    /// The offset of the first call in function `from` that may reach function `to`.
    fn call_offset(&self, from: usize, to: usize) -> usize {
        self.calls[from]
            .iter()
            .find(|&&(target, _)| target == to || (!self.is_function(target) && self.successors[target].contains(&to)))
            .map_or(0, |&(_, offset)| offset)
    }
}

/// Cycles covering every function that can recurse, up to [`MAX_REPORTED_CYCLES`]: for each
/// strongly connected group of functions that can call itself, the shortest cycle through its
/// lowest-numbered function not yet on a reported cycle, until all of the group's functions
/// are. Sorted by first function.
pub(crate) fn cycles(module: &ModuleInfo<'_>) -> Vec<Cycle> {
    cycles_counting_work(module).0
}

/// [`cycles`], and the number of call-graph edges followed to find them.
pub(crate) fn cycles_counting_work(module: &ModuleInfo<'_>) -> (Vec<Cycle>, u64) {
    let mut graph = CallGraph::build(module);
    let component = graph.components();
    let mut covered = vec![false; graph.functions.len()];
    let mut cycles = Vec::new();
    // Functions in index order: each group's lowest-numbered function comes first.
    for start in 0..graph.functions.len() {
        if cycles.len() == MAX_REPORTED_CYCLES {
            break;
        }
        if covered[start] {
            continue;
        }
        // A function alone in its group without a call to itself has no cycle.
        let Some(path) = graph.shortest_cycle(start, &component) else {
            continue;
        };
        for &node in &path {
            covered[node] = true;
        }
        let next = path.get(1).copied().unwrap_or(start);
        cycles.push(Cycle {
            offset: graph.call_offset(start, next),
            functions: path.into_iter().map(|node| graph.functions[node]).collect(),
        });
    }
    cycles.sort_by_key(|cycle| cycle.functions.first().copied());
    (cycles, graph.work)
}
