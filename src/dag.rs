//! The dependency graph of stage instances (petgraph): topological order, dependents, cycles.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;

use crate::spec::Instance;

/// Instances as a graph with an edge from each dependency to its dependent.
pub struct Dag {
    /// The graph; node weights are instance indices (node `i` is instance `i`).
    pub graph: DiGraph<usize, ()>,
    /// Instance indices in a topological order (dependencies first, ties in file order).
    pub order: Vec<usize>,
    /// For each instance, the instances that depend on it directly.
    pub dependents: Vec<Vec<usize>>,
}

impl Dag {
    /// Builds the graph; on a cycle returns the instances on one cycle, each depending on
    /// the next (and the last on the first).
    pub fn build(instances: &[Instance]) -> Result<Dag, Vec<usize>> {
        let mut graph = DiGraph::with_capacity(instances.len(), instances.len());
        for i in 0..instances.len() {
            graph.add_node(i);
        }
        let mut dependents = vec![Vec::new(); instances.len()];
        for (i, instance) in instances.iter().enumerate() {
            for &dep in &instance.deps {
                graph.add_edge(NodeIndex::new(dep), NodeIndex::new(i), ());
                dependents[dep].push(i);
            }
        }
        // Kahn's algorithm, always taking the earliest ready instance in file order, so the
        // order (and the plan's listing) follows the file wherever dependencies allow.
        let mut indegree: Vec<usize> = (0..instances.len())
            .map(|i| {
                graph
                    .neighbors_directed(NodeIndex::new(i), Direction::Incoming)
                    .count()
            })
            .collect();
        let mut ready: BinaryHeap<Reverse<usize>> = (0..instances.len())
            .filter(|&i| indegree[i] == 0)
            .map(Reverse)
            .collect();
        let mut order = Vec::with_capacity(instances.len());
        while let Some(Reverse(i)) = ready.pop() {
            order.push(i);
            for next in graph.neighbors_directed(NodeIndex::new(i), Direction::Outgoing) {
                indegree[next.index()] -= 1;
                if indegree[next.index()] == 0 {
                    ready.push(Reverse(next.index()));
                }
            }
        }
        if order.len() < instances.len() {
            // Every instance left has an unfinished dependency; following those must loop.
            let mut node = (0..instances.len()).find(|&i| indegree[i] > 0).unwrap_or(0);
            let mut seen = vec![false; instances.len()];
            while !std::mem::replace(&mut seen[node], true) {
                node = instances[node]
                    .deps
                    .iter()
                    .copied()
                    .find(|&d| indegree[d] > 0)
                    .unwrap_or(node);
            }
            return Err(find_cycle(instances, node));
        }
        Ok(Dag {
            order,
            graph,
            dependents,
        })
    }

    /// Every instance downstream of `start` (not including it).
    pub fn descendants(&self, start: usize) -> Vec<usize> {
        let mut seen = vec![false; self.dependents.len()];
        let mut stack = self.dependents[start].clone();
        let mut out = Vec::new();
        while let Some(i) = stack.pop() {
            if !std::mem::replace(&mut seen[i], true) {
                out.push(i);
                stack.extend(&self.dependents[i]);
            }
        }
        out
    }
}

/// A path `start → dep → ... → start` following dependencies, found breadth-first.
fn find_cycle(instances: &[Instance], start: usize) -> Vec<usize> {
    let mut parent: Vec<Option<usize>> = vec![None; instances.len()];
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for &dep in &instances[node].deps {
            if dep == start {
                let mut path = vec![node];
                while let Some(p) = parent[*path.last().unwrap_or(&start)] {
                    path.push(p);
                }
                if path.last() != Some(&start) {
                    path.push(start);
                }
                path.reverse();
                path.dedup();
                return path;
            }
            if parent[dep].is_none() && dep != start {
                parent[dep] = Some(node);
                queue.push_back(dep);
            }
        }
    }
    vec![start]
}
