"""Graph validation: every structural error names the node or edge at fault."""

import numpy as np
import pytest

from edgesnn.errors import GraphError, NodeValidationError
from edgesnn.graph import (
    LIF,
    AvgPool2d,
    Conv1d,
    Conv2d,
    Delay,
    Flatten,
    Graph,
    Input,
    Linear,
    Output,
    Scale,
    SumPool2d,
)  # fmt: skip


def rnn_graph(n_in=4, n=3):
    return Graph(
        {
            "x": Input((n_in,)),
            "fc": Linear(np.ones((n, n_in))),
            "lif": LIF.uniform(n, tau_mem_s=0.01, v_threshold=1.0),
            "rec": Linear(np.eye(n)),
            "y": Output((n,)),
        },
        [("x", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "y")],
    )


def test_recurrent_edge_is_the_one_closing_the_cycle():
    g = rnn_graph()
    assert g.back_edges == {("rec", "lif")}
    assert g.order.index("lif") < g.order.index("rec")
    assert g.inputs == ("x",) and g.outputs == ("y",)


def test_dangling_edge_is_named():
    with pytest.raises(GraphError, match=r"edges/1: edge fc -> nowhere refers to unknown node 'nowhere'"):
        Graph({"x": Input((2,)), "fc": Linear(np.eye(2)), "y": Output((2,))}, [("x", "fc"), ("fc", "nowhere")])


def test_cycle_without_state_is_refused():
    nodes = {"x": Input((2,)), "a": Linear(np.eye(2)), "b": Scale(2.0), "y": Output((2,))}
    with pytest.raises(GraphError, match="a -> b -> a has no node with state"):
        Graph(nodes, [("x", "a"), ("a", "b"), ("b", "a"), ("b", "y")])


def test_cycle_through_a_delay_is_allowed():
    nodes = {"x": Input((2,)), "a": Linear(np.eye(2)), "d": Delay(0.002), "y": Output((2,))}
    g = Graph(nodes, [("x", "a"), ("a", "d"), ("d", "a"), ("a", "y")])
    assert g.back_edges == {("d", "a")}


def test_shape_clash_names_both_ends():
    nodes = {"x": Input((4,)), "fc": Linear(np.ones((3, 5))), "y": Output((3,))}
    with pytest.raises(GraphError, match=r"nodes/fc/input: from x: expected input \(5,\), got \(4,\)"):
        Graph(nodes, [("x", "fc"), ("fc", "y")])


def test_disagreeing_inputs_are_named():
    nodes = {"x": Input((4,)), "a": Linear(np.ones((3, 4))), "b": Linear(np.ones((2, 4))), "s": Scale(1.0),
             "y": Output((3,))}  # fmt: skip
    with pytest.raises(GraphError, match=r"edges into s disagree: a gives \(3,\), b gives \(2,\)"):
        Graph(nodes, [("x", "a"), ("x", "b"), ("a", "s"), ("b", "s"), ("s", "y")])


def test_node_without_input_and_missing_io_are_refused():
    with pytest.raises(GraphError, match="no Output"):
        Graph({"x": Input((2,))}, [])
    with pytest.raises(GraphError, match="nodes/fc: node has no incoming edge"):
        Graph({"x": Input((2,)), "fc": Linear(np.eye(2)), "y": Output((2,))}, [("x", "y")])


def test_conv_pool_flatten_shapes_follow_pytorch():
    nodes = {
        "x": Input((2, 64, 64)),
        "c1": Conv2d(np.zeros((16, 2, 3, 3)), stride=2, padding=1),
        "p": AvgPool2d(kernel_size=2),
        "s": SumPool2d(kernel_size=3, stride=1, padding=1),
        "f": Flatten(),
        "y": Output((16 * 16 * 16,)),
    }
    g = Graph(nodes, [("x", "c1"), ("c1", "p"), ("p", "s"), ("s", "f"), ("f", "y")])
    assert g.shape("c1") == (16, 32, 32)
    assert g.shape("p") == (16, 16, 16)
    assert g.shape("s") == (16, 16, 16)
    assert g.shape("f") == (4096,)


def test_grouped_dilated_conv1d_shape():
    node = Conv1d(np.zeros((8, 2, 3)), stride=2, padding=2, dilation=2, groups=2)
    assert node.output_shape((4, 20)) == (8, 10)
    with pytest.raises(NodeValidationError, match="C_in=4"):
        node.output_shape((3, 20))


def test_neuron_parameters_must_be_finite_and_positive():
    with pytest.raises(NodeValidationError, match="tau_mem_s: expected time constants > 0"):
        LIF.uniform(3, tau_mem_s=0.0, v_threshold=1.0)
    with pytest.raises(NodeValidationError, match="v_threshold: expected finite values, got 1 NaN/Inf"):
        LIF(tau_mem_s=np.ones(3), v_threshold=np.array([1.0, np.nan, 1.0]))
    with pytest.raises(NodeValidationError, match="reset_mode: expected one of to_value, subtract"):
        LIF.uniform(3, tau_mem_s=0.01, v_threshold=1.0, reset_mode="zero")


def test_parameters_are_read_only_float32():
    lif = LIF.uniform(3, tau_mem_s=0.01, v_threshold=1.0)
    assert lif.tau_mem_s.dtype == np.float32 and lif.v_reset.shape == (3,)
    with pytest.raises(ValueError):
        lif.tau_mem_s[0] = 1.0
