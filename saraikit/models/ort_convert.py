"""An ONNX Runtime ``.ort`` file rewritten as an ONNX graph, so ONNX Runtime can optimize it when it loads it.

Why: ONNX Runtime applies no graph optimizations to a model in its ``.ort``
format (the format is meant to be saved after optimizing). Moonshine's
``.ort`` files were saved unoptimized: every call turns the int8 weights back
into float (``Cast`` + ``Mul`` + ``Add`` on 81 weights of the decoder, on every
decoder step) and runs unfused layer norms and attention. The same graph as
``.onnx`` lets ONNX Runtime fold those weight computations into float
constants once, at load time, and fuse the rest.

Decisions
---------
- A faithful, node-for-node copy: every node (op type, domain, inputs,
  outputs, attributes, subgraphs of ``If``/``Loop``), every initializer
  (bytes as stored), the graph inputs and outputs with their declared types,
  the IR version and the opsets of the domains the graph uses. Nothing is
  computed here: ONNX Runtime's own optimizer does the folding.
- The copy lives in memory (``SerializeToString`` for
  ``onnxruntime.InferenceSession``); nothing is written next to the provisioned
  files, so the converted graph is always the one the checked ``.ort`` holds.
- Sparse initializers and ORT-internal fused nodes have no ONNX equivalent
  here: a file holding them is refused with a message, never half converted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from saraikit.core.errors import ModelError
from saraikit.models.ort_file import _all_graphs, _flatbuffer_model, _nodes, _text


def ort_to_onnx(path: str | Path):
    """The ``.ort`` model at ``path`` as an ``onnx.ModelProto`` (checked by ``onnx.checker``)."""
    import onnx
    from onnx import helper

    path = Path(path)
    model = _flatbuffer_model(path)
    graphs = list(_all_graphs(model.Graph()))
    for graph in graphs:
        if graph.SparseInitializersLength():
            raise ModelError(f"{path}: sparse initializers cannot be converted to ONNX here")
    used = {_text(node.Domain()) for graph in graphs for node in _nodes(graph)}
    opsets = []
    for i in range(model.OpsetImportLength()):
        opset = model.OpsetImport(i)
        if _text(opset.Domain()) in used:
            opsets.append(helper.make_opsetid(_text(opset.Domain()), int(opset.Version())))
    converted = helper.make_model(_graph(model.Graph(), path, top=True), opset_imports=opsets,
                                  producer_name=f"saraikit ort_to_onnx from {path.name}")
    converted.ir_version = int(model.IrVersion())
    try:
        onnx.checker.check_model(converted)
    except onnx.checker.ValidationError as exc:
        raise ModelError(f"{path}: the ONNX graph converted from this .ort file is not valid: {exc}") from exc
    return converted


def _graph(graph, path: Path, top: bool = False):
    from onnx import helper

    args = {_text(graph.NodeArgs(i).Name()): graph.NodeArgs(i) for i in range(graph.NodeArgsLength())}
    initializers = [_tensor(graph.Initializers(i)) for i in range(graph.InitializersLength())]
    constant = {t.name for t in initializers}
    inputs = [_text(graph.Inputs(i)) for i in range(graph.InputsLength())]
    outputs = [_text(graph.Outputs(i)) for i in range(graph.OutputsLength())]
    nodes = [_node(node, path) for node in _nodes(graph)]
    return helper.make_graph(
        nodes, "main" if top else "subgraph",
        [_value_info(args.get(name), name) for name in inputs if name not in constant],
        [_value_info(args.get(name), name) for name in outputs],
        initializer=initializers)


def _node(node, path: Path):
    from onnx import helper
    from onnxruntime.tools.ort_format_model.ort_flatbuffers_py import fbs

    if node.Type() != fbs.NodeType.NodeType.Primitive:
        raise ModelError(f"{path}: node {_text(node.Name())!r} ({_text(node.OpType())}) is an ORT-internal "
                         "fused node; it has no ONNX equivalent")
    made = helper.make_node(_text(node.OpType()),
                            [_text(node.Inputs(i)) for i in range(node.InputsLength())],
                            [_text(node.Outputs(i)) for i in range(node.OutputsLength())],
                            name=_text(node.Name()) or None, domain=_text(node.Domain()) or None)
    made.attribute.extend(_attribute(node.Attributes(i), path) for i in range(node.AttributesLength()))
    return made


def _attribute(attribute, path: Path):
    from onnx import AttributeProto
    from onnxruntime.tools.ort_format_model.ort_flatbuffers_py import fbs

    kinds = fbs.AttributeType.AttributeType
    kind = attribute.Type()
    made = AttributeProto(name=_text(attribute.Name()), type=kind)  # ORT's enum mirrors ONNX's
    if kind == kinds.FLOAT:
        made.f = attribute.F()
    elif kind == kinds.INT:
        made.i = attribute.I()
    elif kind == kinds.STRING:
        made.s = attribute.S() or b""
    elif kind == kinds.TENSOR:
        made.t.CopyFrom(_tensor(attribute.T()))
    elif kind == kinds.GRAPH:
        made.g.CopyFrom(_graph(attribute.G(), path))
    elif kind == kinds.FLOATS:
        made.floats.extend(attribute.Floats(i) for i in range(attribute.FloatsLength()))
    elif kind == kinds.INTS:
        made.ints.extend(attribute.Ints(i) for i in range(attribute.IntsLength()))
    elif kind == kinds.STRINGS:
        made.strings.extend(attribute.Strings(i) for i in range(attribute.StringsLength()))
    elif kind == kinds.TENSORS:
        made.tensors.extend(_tensor(attribute.Tensors(i)) for i in range(attribute.TensorsLength()))
    elif kind == kinds.GRAPHS:
        made.graphs.extend(_graph(attribute.Graphs(i), path) for i in range(attribute.GraphsLength()))
    else:
        raise ModelError(f"{path}: attribute {made.name!r} of type {kind} cannot be converted to ONNX")
    return made


def _tensor(tensor):
    from onnx import TensorProto

    made = TensorProto(name=_text(tensor.Name()), data_type=tensor.DataType())
    made.dims.extend(tensor.Dims(i) for i in range(tensor.DimsLength()))
    if tensor.StringDataLength():
        made.string_data.extend(tensor.StringData(i) for i in range(tensor.StringDataLength()))
    elif tensor.RawDataLength():
        made.raw_data = np.asarray(tensor.RawDataAsNumpy(), dtype=np.uint8).tobytes()
    return made


def _value_info(arg, name: str):
    """A graph input/output with the element type and shape ORT stored (symbolic dims by name)."""
    from onnx import ValueInfoProto
    from onnx import helper

    if arg is None or arg.Type() is None:
        return ValueInfoProto(name=name)
    from onnxruntime.tools.ort_format_model.ort_flatbuffers_py import fbs

    info = arg.Type()
    if info.ValueType() != fbs.TypeInfoValue.TypeInfoValue.tensor_type:
        raise ModelError(f"{name}: only tensor inputs and outputs can be converted")
    tensor_type = fbs.TensorTypeAndShape.TensorTypeAndShape()
    tensor_type.Init(info.Value().Bytes, info.Value().Pos)
    shape = tensor_type.Shape()
    dims = None
    if shape is not None:
        dims = []
        for i in range(shape.DimLength()):
            value = shape.Dim(i).Value()
            if value is None:
                dims.append(None)
            elif value.DimType() == fbs.DimensionValueType.DimensionValueType.VALUE:
                dims.append(int(value.DimValue()))
            else:
                dims.append(_text(value.DimParam()) or None)
    return helper.make_tensor_value_info(name, tensor_type.ElemType(), dims)
