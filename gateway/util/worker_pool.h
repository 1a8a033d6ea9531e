// A bounded pool of threads for blocking library calls (libspf2, libclamav,
// ...), so they never run on an event loop.
//
//   auto job = [req] { return blockingCall(req); };
//   int n = co_await pool.run(std::move(job));
//
// Name the callable, as above: g++ 12 destroys a lambda temporary that
// appears inside a co_await expression twice, so one capturing a
// shared_ptr or a string there corrupts the heap.
//
// run() completes on the awaiting coroutine's own executor, with fn's value
// or its exception. Bounds: `threads` workers and at most `max_queued` jobs
// waiting; beyond that run() throws WorkerPoolBusy at once (the pipeline then
// applies the filter's failure mode) instead of letting work pile up.
//
// Cancellation (e.g. a filter timeout through asio's `||`): the waiting
// coroutine resumes at once with asio::error::operation_aborted thrown as
// std::system_error; a job already running finishes in the background and
// its result is dropped. A job still queued is skipped. So fn must own what
// it touches (capture by value or shared_ptr) whenever the caller may be
// cancelled.
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <type_traits>
#include <variant>
#include <vector>

#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/error.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>

namespace mxgate {

class WorkerPoolBusy : public std::runtime_error {
 public:
  WorkerPoolBusy() : std::runtime_error("worker pool queue is full") {}
};

class WorkerPool {
 public:
  // threads == 0: one per core.
  explicit WorkerPool(size_t threads = 0, size_t max_queued = 1024);
  // Runs the queued jobs' cancellation (they are skipped) and joins.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  size_t threads() const { return threads_.size(); }

  template <class F>
  asio::awaitable<std::invoke_result_t<F>> run(F fn);

 private:
  struct Job {
    std::function<void()> work;    // runs fn and completes the waiter
    std::function<void()> cancel;  // completes the waiter with "aborted" (pool stopping)
  };
  // Queues a job; false when the queue is full or the pool is stopping.
  bool submit(Job job);
  void loop();

  size_t max_queued_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

template <class F>
asio::awaitable<std::invoke_result_t<F>> WorkerPool::run(F fn) {
  using R = std::invoke_result_t<F>;
  using Value = std::conditional_t<std::is_void_v<R>, std::monostate, R>;
  // Shared by the worker, the cancellation handler and the waiter; whoever
  // claims `done` first completes the waiter.
  struct State {
    std::mutex mu;
    bool done = false;
    std::optional<Value> value;
    std::exception_ptr error;
  };
  auto state = std::make_shared<State>();
  co_await asio::async_initiate<decltype(asio::use_awaitable), void()>(
      [&](auto handler) {
        using Handler = decltype(handler);
        auto h = std::make_shared<std::optional<Handler>>(std::move(handler));
        auto finish = [h, state](std::exception_ptr e) {
          {
            std::lock_guard lock(state->mu);
            if (state->done) return;
            state->done = true;
            if (e) state->error = e;
          }
          auto ex = asio::get_associated_executor(**h);
          asio::post(ex, [h]() mutable {
            auto slot = asio::get_associated_cancellation_slot(**h);
            if (slot.is_connected()) slot.clear();
            std::move (**h)();
          });
        };
        auto aborted = [] {
          return std::make_exception_ptr(
              std::system_error(asio::error::operation_aborted, "worker pool job"));
        };
        Job job;
        job.work = [state, finish, fn = std::move(fn)]() mutable {
          {
            std::lock_guard lock(state->mu);
            if (state->done) return;  // cancelled while queued
          }
          std::exception_ptr e;
          std::optional<Value> v;
          try {
            if constexpr (std::is_void_v<R>) {
              fn();
              v.emplace();
            } else {
              v.emplace(fn());
            }
          } catch (...) {
            e = std::current_exception();
          }
          {
            std::lock_guard lock(state->mu);
            if (state->done) return;
            state->value = std::move(v);
          }
          finish(e);
        };
        job.cancel = [finish, aborted] { finish(aborted()); };
        auto slot = asio::get_associated_cancellation_slot(**h);
        if (slot.is_connected())
          slot.assign([finish, aborted](asio::cancellation_type) { finish(aborted()); });
        if (!submit(std::move(job))) finish(std::make_exception_ptr(WorkerPoolBusy()));
      },
      asio::use_awaitable);
  // Completed: the state is no longer written by anyone.
  if (state->error) std::rethrow_exception(state->error);
  if constexpr (!std::is_void_v<R>) co_return std::move(*state->value);
}

}  // namespace mxgate
