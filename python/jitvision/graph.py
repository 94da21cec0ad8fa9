"""``python -m jitvision graph MODEL``: a TorchScript module drawn as a graph, laid out by Graphviz.

Two views of ``forward``:

- the module view (default): the module hierarchy collapsed to ``--depth``: a call of a submodule whose qualified
  name has ``--depth`` parts or more (``model.2`` has 2) is one box; a call of a shallower one is opened into a
  cluster that holds the submodule's own graph;
- the inlined view (``--inlined``): ``module.inlined_graph``, every operator of the whole model as its own box.

Parameters, constants and shape arithmetic (``size``, scalar maths on sizes) are not drawn. Edges carry the
shapes of one forward at the input shape the file records (``jitvision.json`` or the official ``config.txt``),
batch 1: every value of each graph drawn is made an extra output of a copy of that graph, and the copy is run
once. Control flow (``prim::If``/``prim::Loop`` of scripted code) is one box; the ops inside its blocks are not
drawn. Files that record no input shape, or one above ``MAX_INPUT_ELEMENTS``, are drawn without shapes.
"""
import itertools
import math
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from jitvision.errors import ModelError, OutputError, UsageError
from jitvision.firewall import add_trust_flag
from jitvision.info import build_kind
from jitvision.model_file import input_shape, load_model, quiet_jit_warnings, read_contract

FORMATS = ("svg", "png", "dot")
MAX_INPUT_ELEMENTS = 3 * 1280 * 1280  # the forward for the shapes runs at most a 1280x1280 RGB image
_HIDDEN = {"prim::Constant", "prim::GetAttr"}  # weights, attributes and literals
_PACK = {"prim::ListConstruct", "prim::TupleConstruct"}
_UNPACK = {"prim::ListUnpack", "prim::TupleUnpack"}
_NOT_VALUES = {"ClassType", "InterfaceType", "FunctionType", "NoneType"}  # not returned by the shape probe
_SHAPE_OPS = {"aten::size", "prim::NumToTensor", "aten::Int", "aten::ScalarImplicit", "aten::dim", "aten::len"}
_DATA = {"TensorType", "ListType", "TupleType", "OptionalType"}

Sources = List[Tuple[str, str]]  # where a value comes from: (drawn node id, edge label) per tensor in it


def _shape_label(value) -> str:
    if isinstance(value, torch.Tensor):
        return "x".join(str(d) for d in value.shape) if value.dim() else "scalar"
    return ""


def probe(graph: torch._C.Graph, owner: torch._C.ScriptModule, args: Sequence) -> Dict[int, object]:
    """Run ``graph`` once on ``(owner, *args)``; the value (tensor, list...) of each top-level node output,
    keyed by ``Value.unique()``."""
    copy = graph.copy()
    originals = [v for n in graph.nodes() for v in n.outputs() if v.type().kind() not in _NOT_VALUES]
    copies = [v for n in copy.nodes() for v in n.outputs() if v.type().kind() not in _NOT_VALUES]
    ret = copy.return_node()
    returned = list(ret.inputs())
    pack = copy.create("prim::TupleConstruct", returned + copies)
    pack.output().setType(torch._C.TupleType([v.type() for v in returned + copies]))
    pack.insertBefore(ret)
    ret.removeAllInputs()
    ret.addInput(pack.output())
    run = torch._C._create_function_from_graph("shape_probe", copy)
    with torch.no_grad():
        results = run(owner, *args)
    return {v.unique(): r for v, r in zip(originals, results[len(returned):])}


class Drawing:
    """Builds the Graphviz graph: nodes, clusters for opened submodules, edges labelled with shapes."""

    def __init__(self, title: str, depth: int):
        import graphviz

        self.dot = graphviz.Digraph("model", graph_attr={"label": title, "labelloc": "t", "fontsize": "12",
                                                         "rankdir": "TB", "nodesep": "0.2", "ranksep": "0.3"},
                                    node_attr={"shape": "box", "style": "rounded,filled", "fillcolor": "white",
                                               "fontsize": "10", "fontname": "Helvetica", "height": "0.3"},
                                    edge_attr={"fontsize": "8", "fontname": "Helvetica", "arrowsize": "0.6"})
        self.depth = depth
        self.ids = (f"n{i}" for i in itertools.count())
        self.boxes = 0

    def box(self, where, label: str, inputs: Sources, **attrs) -> str:
        node = next(self.ids)
        where.node(node, label, **attrs)
        self.boxes += 1
        for source, edge_label in inputs:
            self.dot.edge(source, node, label=edge_label)
        return node

    def walk(self, graph, owner, path: str, inputs: List[Sources], args: Optional[list], where):
        """Draw ``graph`` (``owner``'s method) into ``where``; the sources of its return values."""
        values = {}
        if args is not None:
            values = dict(zip((v.unique() for v in list(graph.inputs())[1:]), args))
            values.update(probe(graph, owner._c, args))
        sources: Dict[int, Sources] = {v.unique(): s for v, s in zip(list(graph.inputs())[1:], inputs)}
        modules = {next(graph.inputs()).unique(): (owner, path)}
        items: Dict[int, Dict] = {}  # the sources of each constant key of the dictionaries built in this graph
        for node in graph.nodes():
            ins = list(node.inputs())
            outs = list(node.outputs())
            if node.kind() == "prim::GetAttr" and ins[0].unique() in modules:
                parent, parent_path = modules[ins[0].unique()]
                child = getattr(parent, node.s("name"))
                if isinstance(child, torch.jit.ScriptModule):
                    modules[outs[0].unique()] = (child, f"{parent_path}.{node.s('name')}".lstrip("."))
            elif node.kind() in _HIDDEN or _follow_containers(node, sources, items):
                continue
            elif node.kind() == "prim::CallMethod" and ins[0].unique() in modules:
                returned = self.call(node, modules[ins[0].unique()], sources, values, where)
                for out, source in zip(outs, returned):
                    sources[out.unique()] = source
            else:
                self.op(node, sources, values, where)
        return [sources.get(v.unique(), []) for v in graph.return_node().inputs()]

    def call(self, node, module_path, sources, values, where) -> List[Sources]:
        """A submodule call: one box at ``depth`` or below, else a cluster with the submodule's own graph."""
        module, path = module_path
        ins = list(node.inputs())[1:]
        method = getattr(module, node.s("name"))
        name = f"{path}: {module.original_name}" if path else module.original_name
        inner = [n for n in method.graph.nodes() if n.kind() not in _HIDDEN | _PACK | _UNPACK]
        if (len(path.split(".")) if path else 0) >= self.depth or not inner:
            outs = list(node.outputs())
            box = self.box(where, name, [s for v in ins for s in sources.get(v.unique(), [])],
                           fillcolor="#dbe8f7")
            return [[(box, _shape_label(values.get(out.unique())))] for out in outs]
        args = [values[v.unique()] if v.unique() in values else v.toIValue() for v in ins] if values else None
        with where.subgraph(name=f"cluster_{next(self.ids)}") as cluster:
            cluster.attr(label=name, style="rounded", color="#8aa4c8", fontsize="10", fontname="Helvetica")
            return self.walk(method.graph, module, path, [sources.get(v.unique(), []) for v in ins], args, cluster)

    def op(self, node, sources, values, where) -> None:
        kind = node.kind()
        if kind in _SHAPE_OPS or _is_shape_arithmetic(node, values):
            for out in node.outputs():
                sources[out.unique()] = []
            return
        label = kind.split("::", 1)[-1]
        if kind == "prim::CallFunction":
            label = str(next(node.inputs()).type()).rsplit(".", 1)[-1]
        inputs = [s for v in node.inputs() for s in sources.get(v.unique(), [])]
        box = self.box(where, label, inputs)
        for out in node.outputs():
            sources[out.unique()] = [(box, _shape_label(values.get(out.unique())))]


def _follow_containers(node, sources: Dict[int, Sources], items: Dict[int, Dict]) -> bool:
    """Lists, tuples and dictionaries carry tensors from one op to another: follow them (constant keys and
    indices only) instead of drawing them. True when ``node`` was such a container operation."""
    kind, ins, outs = node.kind(), list(node.inputs()), list(node.outputs())
    of = [sources.get(v.unique(), []) for v in ins]
    return _follow_sequence(kind, ins, outs, of, sources) or _follow_item(kind, ins, outs, of, sources, items)


def _follow_sequence(kind: str, ins, outs, of: List[Sources], sources: Dict[int, Sources]) -> bool:
    """Packing, unpacking and appending: the sources travel along."""
    if kind in _PACK:
        sources[outs[0].unique()] = [s for each in of for s in each]
    elif kind in _UNPACK and len(of[0]) == len(outs):
        for out, source in zip(outs, of[0]):
            sources[out.unique()] = [source]
    elif kind == "aten::append":
        sources[ins[0].unique()] = sources[outs[0].unique()] = of[0] + of[1]
    else:
        return False
    return True


def _follow_item(kind: str, ins, outs, of: List[Sources], sources: Dict[int, Sources], items: Dict[int, Dict]) -> bool:
    """Dictionaries built and read with constant keys, and lists or tuples read at a constant index."""
    if kind == "prim::DictConstruct" and not ins:
        items[outs[0].unique()] = {}
    elif kind == "aten::_set_item" and ins[0].unique() in items and ins[1].toIValue() is not None:
        items[ins[0].unique()][ins[1].toIValue()] = of[2]
    elif kind == "aten::__getitem__" and ins[1].toIValue() is not None:
        key = ins[1].toIValue()
        if ins[0].unique() in items:
            sources[outs[0].unique()] = items[ins[0].unique()].get(key, [])
        elif isinstance(key, int) and -len(of[0]) <= key < len(of[0]):
            sources[outs[0].unique()] = [of[0][key]]
        else:
            return False
    else:
        return False
    return True


def _is_shape_arithmetic(node, values) -> bool:
    """No data comes out (only ints, bools...), or only scalars computed from scalars (traced size maths)."""
    outs = list(node.outputs())
    if not any(o.type().kind() in _DATA for o in outs):
        return True
    known = [values.get(v.unique()) for v in itertools.chain(outs, node.inputs()) if v.type().kind() == "TensorType"]
    return bool(values) and all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in known)


def example_input(loaded) -> Tuple[Optional[torch.Tensor], str]:
    """The forward input the edge shapes come from, or None with the reason there is none."""
    try:
        shape = input_shape(read_contract(loaded))
    except ModelError as exc:
        return None, f"no shapes: {exc}"
    if math.prod(shape[1:]) > MAX_INPUT_ELEMENTS or any(d < 1 for d in shape):
        return None, f"no shapes: the recorded input shape {shape} is outside the limit for one forward"
    dtype = next((p.dtype for p in loaded.module.parameters()), torch.float32)
    return torch.zeros([1, *shape[1:]], dtype=dtype), "x".join(str(d) for d in [1, *shape[1:]])


def draw(path: str, depth: int = 2, inlined: bool = False):
    """(graphviz.Digraph, number of boxes) of the TorchScript file ``path``."""
    loaded = load_model(path)
    module = loaded.module
    x, shape_note = example_input(loaded)
    view = "inlined" if inlined else f"modules to depth {depth}"
    drawing = Drawing(f"{os.path.basename(path)}: {build_kind(module)}, {view}, input {shape_note}", depth)
    graph = module.inlined_graph if inlined else module.graph
    source = drawing.box(drawing.dot, "input", [], shape="oval", fillcolor="#eeeeee")
    try:
        with quiet_jit_warnings():
            returned = drawing.walk(graph, module, "", [[(source, shape_note if x is not None else "")]],
                                    [x] if x is not None else None, drawing.dot)
    except RuntimeError as exc:
        raise ModelError(f"one forward of {path} at its recorded input shape fails: "
                         f"{str(exc).strip().splitlines()[0]}") from None
    drawing.box(drawing.dot, "output", [s for r in returned for s in r], shape="oval", fillcolor="#eeeeee")
    return drawing.dot, drawing.boxes


def write(dot, out: Optional[str]) -> None:
    """DOT text on stdout without ``out``; else the format named by the extension (svg, png: Graphviz's dot)."""
    if out is None:
        sys.stdout.write(dot.source)
        return
    fmt = os.path.splitext(out)[1].lower().lstrip(".")
    if fmt not in FORMATS:
        raise UsageError(f"--out {out}: the extension must be one of {', '.join('.' + f for f in FORMATS)}")
    import graphviz

    try:
        data = dot.source.encode() if fmt == "dot" else dot.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise OutputError(f"cannot write {out}: Graphviz's `dot` is not installed (Debian: apt-get install "
                          "graphviz); --out FILE.dot needs no Graphviz") from None
    try:
        with open(out, "wb") as f:
            f.write(data)
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc.strerror}") from None


def run(args) -> int:
    if args.depth < 0:
        raise UsageError("--depth must be 0 or more")
    dot, boxes = draw(args.model, args.depth, args.inlined)
    write(dot, args.out)
    if args.out:
        print(f"wrote {args.out} ({boxes} boxes)", file=sys.stderr)
    return 0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "graph", help="draw a TorchScript module's graph (SVG, PNG or DOT)",
        description="Draw forward of a TorchScript file as a graph laid out by Graphviz: the module hierarchy "
                    "collapsed to --depth, or every operator with --inlined; edges carry tensor shapes from one "
                    "forward at the input shape the file records.")
    parser.add_argument("model", help="TorchScript file")
    add_trust_flag(parser)
    parser.add_argument("--out", help="FILE.svg, FILE.png or FILE.dot (default: DOT text on stdout)")
    parser.add_argument("--depth", type=int, default=2,
                        help="submodules named with this many parts or more (model.2: 2) are one box each, "
                             "shallower ones are opened (default 2)")
    parser.add_argument("--inlined", action="store_true",
                        help="draw the inlined graph: every operator, no module boundaries (--depth is ignored)")
    parser.set_defaults(func=run)
