//! Finds recursion: builds the module's call graph and reports cycles in it.
//!
//! See [`AbiViolation::Recursion`](super::AbiViolation::Recursion) for why recursion is
//! refused and how indirect calls are resolved.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use super::module::{Callee, ModuleInfo};

/// A cycle of calls: function indices in call order (the first is not repeated at the end),
/// and the file offset of the call from the first function to the second (or to itself).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Cycle {
    pub functions: Vec<u32>,
    pub offset: usize,
}

/// The call graph over defined functions: for each, the functions it may call, with the
/// offset of the first call instruction that may reach each.
struct CallGraph {
    /// Function index of node `n`.
    functions: Vec<u32>,
    edges: Vec<BTreeMap<usize, usize>>,
}

impl CallGraph {
    fn build(module: &ModuleInfo<'_>) -> Self {
        let node_of: HashMap<u32, usize> =
            module.bodies.iter().enumerate().map(|(node, body)| (body.index, node)).collect();
        // Indirect targets depend only on the call's type, so each type is resolved once.
        let mut indirect_targets: HashMap<u32, Vec<usize>> = HashMap::new();
        let mut edges = Vec::with_capacity(module.bodies.len());
        for body in &module.bodies {
            let mut out: BTreeMap<usize, usize> = BTreeMap::new();
            for &(callee, offset) in &body.calls {
                let targets = match callee {
                    Callee::Direct(index) => node_of.get(&index).copied().into_iter().collect(),
                    Callee::Indirect(ty) => indirect_targets
                        .entry(ty)
                        .or_insert_with(|| {
                            let wanted = module.type_at(ty);
                            module
                                .address_taken
                                .iter()
                                .filter(|&&index| wanted.is_some() && module.function_type(index) == wanted)
                                .filter_map(|index| node_of.get(index).copied())
                                .collect()
                        })
                        .clone(),
                };
                for target in targets {
                    out.entry(target).or_insert(offset);
                }
            }
            edges.push(out);
        }
        CallGraph { functions: module.bodies.iter().map(|body| body.index).collect(), edges }
    }

    /// Strongly connected components (Tarjan's algorithm), iteratively so that a module with
    /// a very deep call chain cannot overflow the checker's own stack.
    fn components(&self) -> Vec<Vec<usize>> {
        const UNVISITED: usize = usize::MAX;
        let n = self.edges.len();
        let mut index = vec![UNVISITED; n];
        let mut low = vec![0; n];
        let mut on_stack = vec![false; n];
        let mut stack = Vec::new();
        let mut next = 0;
        let mut components = Vec::new();
        let successors: Vec<Vec<usize>> = self.edges.iter().map(|out| out.keys().copied().collect()).collect();

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
                if let Some(&succ) = successors[node].get(*position) {
                    *position += 1;
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
                    let mut component = Vec::new();
                    while let Some(member) = stack.pop() {
                        on_stack[member] = false;
                        component.push(member);
                        if member == node {
                            break;
                        }
                    }
                    components.push(component);
                }
            }
        }
        components
    }

    /// The shortest cycle from `start` back to itself that stays inside `members`.
    fn shortest_cycle(&self, start: usize, members: &BTreeSet<usize>) -> Option<Vec<usize>> {
        let mut parent: HashMap<usize, usize> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        while let Some(node) = queue.pop_front() {
            for &succ in self.edges[node].keys() {
                if succ == start {
                    let mut path = vec![node];
                    while let Some(&previous) = path.last().and_then(|last| parent.get(last)) {
                        path.push(previous);
                    }
                    path.reverse();
                    return Some(path);
                }
                if members.contains(&succ) && !parent.contains_key(&succ) {
                    parent.insert(succ, node);
                    queue.push_back(succ);
                }
            }
        }
        None
    }
}

/// Cycles covering every function that can recurse: for each strongly connected group of
/// functions that can call itself, the shortest cycle through its lowest-numbered function
/// not yet on a reported cycle, until all of the group's functions are. Sorted by first
/// function.
pub(crate) fn cycles(module: &ModuleInfo<'_>) -> Vec<Cycle> {
    let graph = CallGraph::build(module);
    let mut cycles = Vec::new();
    for component in graph.components() {
        let members: BTreeSet<usize> = component.into_iter().collect();
        let mut covered = BTreeSet::new();
        for &start in &members {
            if covered.contains(&start) {
                continue;
            }
            // A one-function component without a self-call has no cycle.
            let Some(path) = graph.shortest_cycle(start, &members) else {
                continue;
            };
            covered.extend(path.iter().copied());
            let next = path.get(1).copied().unwrap_or(start);
            cycles.push(Cycle {
                offset: graph.edges[start].get(&next).copied().unwrap_or_default(),
                functions: path.into_iter().map(|node| graph.functions[node]).collect(),
            });
        }
    }
    cycles.sort_by_key(|cycle| cycle.functions.first().copied());
    cycles
}
