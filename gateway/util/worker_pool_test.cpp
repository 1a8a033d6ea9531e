#include "gateway/util/worker_pool.h"

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include <gtest/gtest.h>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

namespace mxgate {
namespace {

using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;

template <class T>
T runOn(asio::io_context& io, asio::awaitable<T> a) {
  std::optional<T> out;
  std::exception_ptr err;
  asio::co_spawn(io, std::move(a), [&](std::exception_ptr e, T v) {
    err = e;
    if (!e) out = std::move(v);
  });
  io.run();
  io.restart();
  if (err) std::rethrow_exception(err);
  return *out;
}

TEST(WorkerPool, RunsOffTheLoopAndResumesOnIt) {
  WorkerPool pool(2);
  asio::io_context io;
  auto loop_thread = std::this_thread::get_id();
  auto [worker, resumed] =
      runOn(io, [&]() -> asio::awaitable<std::pair<std::thread::id, std::thread::id>> {
        auto w = co_await pool.run([] { return std::this_thread::get_id(); });
        co_return std::make_pair(w, std::this_thread::get_id());
      }());
  EXPECT_NE(worker, loop_thread);
  EXPECT_EQ(resumed, loop_thread);
}

TEST(WorkerPool, ExceptionsReachTheCaller) {
  WorkerPool pool(1);
  asio::io_context io;
  EXPECT_THROW(runOn(io,
                     [&]() -> asio::awaitable<int> {
                       co_await pool.run([] { throw std::runtime_error("boom"); });
                       co_return 0;
                     }()),
               std::runtime_error);
}

TEST(WorkerPool, FullQueueThrowsBusy) {
  WorkerPool pool(1, 1);
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  asio::io_context io;
  int busy = 0, done = 0;
  for (int i = 0; i < 4; ++i)
    asio::co_spawn(io, pool.run([gate] { gate.wait(); }), [&](std::exception_ptr e) {
      if (!e) {
        ++done;
        return;
      }
      try {
        std::rethrow_exception(e);
      } catch (const WorkerPoolBusy&) {
        ++busy;
      }
    });
  io.poll();  // all four submitted: one running (maybe), one queued, the rest refused
  release.set_value();
  io.run();
  EXPECT_EQ(busy + done, 4);
  EXPECT_GE(busy, 2);
  EXPECT_GE(done, 1);
}

TEST(WorkerPool, CancellationResumesTheWaiterAtOnce) {
  WorkerPool pool(1);
  asio::io_context io;
  std::atomic<bool> finished{false};
  auto start = std::chrono::steady_clock::now();
  auto which = runOn(io, [&]() -> asio::awaitable<int> {
    asio::steady_timer t(co_await asio::this_coro::executor, 50ms);
    auto r = co_await (pool.run([&finished] {
      std::this_thread::sleep_for(400ms);
      finished = true;
    }) || t.async_wait(asio::use_awaitable));
    co_return static_cast<int>(r.index());
  }());
  EXPECT_EQ(which, 1);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 300ms);
  EXPECT_FALSE(finished.load());
  // The destructor waits for the running job.
}

}  // namespace
}  // namespace mxgate

namespace mxgate {
namespace {

TEST(WorkerPool, ManyCoroutinesManyJobs) {
  WorkerPool pool(2, 100000);
  asio::io_context io;
  std::atomic<int> sum{0};
  int finished = 0;
  for (int c = 0; c < 500; ++c)
    asio::co_spawn(
        io,
        [&, c]() -> asio::awaitable<void> {
          for (int k = 0; k < 4; ++k) {
            auto data = std::make_shared<std::string>(100 + k, 'x');
            auto job = [data] { return static_cast<int>(data->size()); };
            int v = co_await pool.run(std::move(job));
            sum += v;
          }
          ++finished;
        },
        asio::detached);
  io.run();
  EXPECT_EQ(finished, 500);
  EXPECT_EQ(sum.load(), 500 * (100 + 101 + 102 + 103));
}

}  // namespace
}  // namespace mxgate
