"""training.sliced: the SW-Generator's sliced Wasserstein distance against a direct autograd form."""
import pytest
import torch

from helpers import assert_close
from training.sliced import directions, sliced_wasserstein, sort_rows


def direct(x, y, t):
    """The authors' form, differentiated by autograd through torch.sort: mean (sort(x t) - sort(y t))^2."""
    return (torch.sort(x @ t.T, dim=0)[0] - torch.sort(y @ t.T, dim=0)[0]).square().mean()


@pytest.mark.parametrize("n, dim, count, chunk", [(1, 2, 3, 1), (7, 3, 10, 4), (64, 784, 300, 128), (33, 5, 1, 256)])
def test_equals_the_direct_form_for_fixed_directions(n, dim, count, chunk):
    g = torch.Generator().manual_seed(n + dim)
    x = torch.randn(n, dim, generator=g, dtype=torch.float64, requires_grad=True)
    y = (torch.randn(n, dim, generator=g, dtype=torch.float64) * 1.3 + 0.2).requires_grad_()
    t = directions(count, dim, g, torch.float64)
    got = sliced_wasserstein(x, y, fixed_directions=t, chunk=chunk)
    want = direct(x, y, t)
    assert_close(got, want, rtol=1e-12, atol=0)
    got_grads = torch.autograd.grad(got, (x, y))
    want_grads = torch.autograd.grad(want, (x, y))
    for a, b in zip(got_grads, want_grads):
        assert_close(a, b, rtol=1e-10, atol=1e-14)


@pytest.mark.usefixtures("keep_threads")
@pytest.mark.parametrize("threads", [1, 3])  # 3: the 5 rows split unevenly over the sorting threads
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpu_row_sort_agrees_with_torch_sort(dtype, threads):
    """The CPU sort (numpy, rows split over torch's thread count) against torch.sort, the other devices'
    sort: values, a permutation, NaN last."""
    torch.set_num_threads(threads)
    a = torch.randn(1001, 5, dtype=dtype).T  # non-contiguous rows
    a[1, 7] = float("nan")
    a[2, :10] = 0.5  # ties
    values, index = sort_rows(a, True)
    want = torch.sort(a, dim=1).values.nan_to_num(9.0)
    assert torch.equal(values.nan_to_num(9.0), want) and values[1, -1].isnan()
    assert torch.equal(torch.gather(a, 1, index).nan_to_num(9.0), want)
    assert torch.equal(index.sort(dim=1).values, torch.arange(1001).expand(5, -1))
    assert index.dtype == torch.int64 and sort_rows(a, False)[1] is None
    assert torch.equal(sort_rows(a, False)[0].nan_to_num(9.0), want)


def test_zero_for_identical_samples_and_unit_directions():
    x = torch.randn(50, 12, dtype=torch.float64)
    assert sliced_wasserstein(x, x.clone(), 500, generator=torch.Generator().manual_seed(0)).item() == 0.0
    t = directions(1000, 12, torch.Generator().manual_seed(1), torch.float64)
    assert_close(t.norm(dim=1), torch.ones(1000, dtype=torch.float64), rtol=1e-14, atol=0)


def test_a_shift_along_every_direction_costs_its_squared_projection():
    """y = x + s: every projection shifts by s.t, so SW = mean_t (s.t)^2, whatever x is."""
    x = torch.randn(40, 6, dtype=torch.float64)
    s = torch.tensor([0.5, -1.0, 0.0, 2.0, 0.1, 0.3], dtype=torch.float64)
    t = directions(200, 6, torch.Generator().manual_seed(2), torch.float64)
    assert_close(sliced_wasserstein(x, x + s, fixed_directions=t), (t @ s).square().mean(), rtol=1e-12, atol=0)


def test_same_generator_state_gives_the_same_value_and_float32_works():
    x, y = torch.randn(30, 784), torch.rand(30, 784)
    a = sliced_wasserstein(x, y, 1000, generator=torch.Generator().manual_seed(5))
    b = sliced_wasserstein(x, y, 1000, generator=torch.Generator().manual_seed(5))
    assert a.dtype == torch.float32 and torch.equal(a, b)


@pytest.mark.parametrize("kwargs, message", [
    (dict(y=torch.zeros(4, 3)), "same shape"),
    (dict(x=torch.zeros(5)), "must be 2-D"),
    (dict(projections=0), "projections must be a positive integer"),
    (dict(chunk=0), "chunk must be a positive integer"),
    (dict(y=torch.zeros(5, 3, dtype=torch.float64)), "one floating dtype"),
    (dict(fixed_directions=torch.zeros(4, 2)), r"fixed_directions must be \(P, 3\)"),
])
def test_bad_input_is_named(kwargs, message):
    args = dict(x=torch.zeros(5, 3), y=torch.zeros(5, 3), projections=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        sliced_wasserstein(args.pop("x"), args.pop("y"), **args)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_cuda_generator_draws_the_directions_on_the_gpu():
    """A GPU step draws its directions on the GPU (from a CUDA generator): value and gradient equal the
    float64 CPU computation with those directions."""
    x = torch.randn(300, 20, dtype=torch.float64, device="cuda", requires_grad=True)
    y = torch.randn(300, 20, dtype=torch.float64, device="cuda") + 0.3
    t = directions(700, 20, torch.Generator("cuda").manual_seed(3), torch.float64)
    assert t.device.type == "cuda"
    # one block of 700: CUDA's generator gives one draw of 700 rows other numbers than draws of 256 + 256 + 188
    got = sliced_wasserstein(x, y, 700, generator=torch.Generator("cuda").manual_seed(3), chunk=1024)
    got.backward()
    xc = x.detach().cpu().requires_grad_()
    want = direct(xc, y.cpu(), t.cpu())
    want.backward()
    assert_close(got.cpu(), want, rtol=1e-10, atol=0)
    assert_close(x.grad.cpu(), xc.grad, rtol=1e-10, atol=1e-14)
