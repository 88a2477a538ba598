"""Resource variables and control flow: VAR_HANDLE, READ/ASSIGN_VARIABLE, CALL_ONCE, IF, WHILE.

TFLM keeps a resource variable outside every subgraph: the interpreter makes one
MicroResourceVariables table (a header and one record per distinct
VAR_HANDLE shared_name) in the tail, and the first ASSIGN_VARIABLE's Prepare
allocates the variable's buffer there, sized by the assigned tensor. CALL_ONCE,
IF and WHILE run other subgraphs; the allocator plans their tensors inside the
calling op's lifetime scope (micro_allocation_info.cc), which the planner
follows through `OpSpec.subgraphs`. The resource-typed tensors VAR_HANDLE
writes are not planned in the arena (measured: the head never holds them).
"""

from __future__ import annotations

from .spec import Graph, OpSpec

# MicroResourceVariables (x86-64): {pointer, int, int}; one MicroResourceVariable:
# {container, shared_name, resource_buffer, bytes, default_value} = 4 pointers + 1 byte.
TABLE_HEADER_POINTERS = 2
RECORD_POINTERS = 5
EMPTY_ALLOCATION = 16  # the runtime also makes one zero-byte allocation (16 with alignment), measured


def resource_ids(graphs: list[Graph]) -> dict[tuple[int, int], str]:
    """(subgraph, resource tensor) -> shared name, for every VAR_HANDLE output."""
    out: dict[tuple[int, int], str] = {}
    for s, g in enumerate(graphs):
        for op in g.ops:
            if op.type == "VAR_HANDLE" and op.outputs:
                name = f"{op.options.get('container', '')}/{op.options.get('shared_name', '')}"
                out[(s, op.outputs[0])] = name
    return out


def resource_variable_bytes(graphs: list[Graph], pointer_bytes: int, align) -> int:
    """Tail bytes of the resource-variable table and of each variable's buffer.

    Buffers are sized by the first ASSIGN_VARIABLE of each variable in
    preparation order (subgraph by subgraph, op by op), as TFLM allocates them.
    """
    ids = resource_ids(graphs)
    names = set(ids.values())
    if not names:
        return 0
    total = EMPTY_ALLOCATION + align(TABLE_HEADER_POINTERS * pointer_bytes) + align(RECORD_POINTERS * pointer_bytes * len(names))
    sized: set[str] = set()
    for s, g in enumerate(graphs):
        for op in g.ops:
            if op.type != "ASSIGN_VARIABLE" or len(op.inputs) < 2:
                continue
            name = ids.get((s, op.inputs[0]))
            if name is None or name in sized:
                continue
            sized.add(name)
            v = g.tensors[op.inputs[1]]
            total += align(v.nbytes)
    return total


SPECS = (
    # OpData structs: VAR_HANDLE {resource_id}, ASSIGN_VARIABLE {scratch_index},
    # CALL_ONCE {init index, has_run}, IF/WHILE {two subgraph indices}; the
    # VarHandle options struct is two string pointers (16 B on x86-64, 8 on 32-bit,
    # counted as 16: a slight over-estimate on boards).
    OpSpec("VAR_HANDLE", options_bytes=16, opdata_bytes=4, sig_kind="varhandle", cost_kind="reshape"),
    OpSpec("READ_VARIABLE", options_bytes=0, opdata_bytes=0, cost_kind="reshape"),
    OpSpec("ASSIGN_VARIABLE", options_bytes=0, opdata_bytes=4, cost_kind="reshape"),
    OpSpec("CALL_ONCE", options_bytes=4, opdata_bytes=8, subgraphs=("init_subgraph_index",)),
    OpSpec("IF", options_bytes=8, opdata_bytes=8, subgraphs=("then_subgraph_index",
                                                              "else_subgraph_index")),
    OpSpec("WHILE", options_bytes=8, opdata_bytes=8, subgraphs=("cond_subgraph_index",
                                                                 "body_subgraph_index")),
)
