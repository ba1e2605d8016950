#include "grpc_echo.hpp"

#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "grpc_echo.grpc.pb.h"
#include "stats.hpp"

namespace cohort::bench {

namespace {

using clock_type = std::chrono::steady_clock;

/// The echo as gRPC's callback API has it: the reply is the request.
class echo_service final : public Echo::CallbackService {
  grpc::ServerUnaryReactor* Call(grpc::CallbackServerContext* ctx, const EchoMessage* request,
                                 EchoMessage* reply) override {
    reply->set_payload(request->payload());
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

}  // namespace

struct grpc_echo_server::impl {
  echo_service service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
};

grpc_echo_server::grpc_echo_server() : impl_(std::make_unique<impl>()) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &impl_->port);
  builder.RegisterService(&impl_->service);
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.SetMaxSendMessageSize(64 << 20);
  impl_->server = builder.BuildAndStart();
  if (!impl_->server || impl_->port == 0) throw std::runtime_error("the gRPC echo server did not start");
}

grpc_echo_server::~grpc_echo_server() { impl_->server->Shutdown(); }

std::string grpc_echo_server::address() const { return "127.0.0.1:" + std::to_string(impl_->port); }

run_result measure_grpc(const std::string& address, int in_flight, std::chrono::milliseconds duration,
                        std::size_t payload_bytes) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  // A channel of its own per measurement (a fresh connection, like the others).
  args.SetInt("grpc.use_local_subchannel_pool", 1);
  auto channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  auto stub = Echo::NewStub(channel);
  EchoMessage request;
  request.set_payload(std::string(payload_bytes, 'x'));
  {
    grpc::ClientContext ctx;
    EchoMessage reply;
    auto status = stub->Call(&ctx, request, &reply);
    if (!status.ok()) throw std::runtime_error("gRPC warm-up call failed: " + status.error_message());
  }
  // Each slot re-issues its call from the completion callback until the run ends.
  struct slot {
    grpc::ClientContext ctx;
    EchoMessage reply;
    clock_type::time_point sent;
  };
  std::mutex m;
  std::condition_variable cv;
  std::vector<double> latencies;
  std::string failure;
  int running = in_flight;
  const auto start = clock_type::now();
  const auto until = start + duration;
  std::function<void(std::unique_ptr<slot>)> send = [&](std::unique_ptr<slot> s) {
    s->sent = clock_type::now();
    auto* raw = s.release();
    stub->async()->Call(&raw->ctx, &request, &raw->reply, [&, raw](grpc::Status status) {
      std::unique_ptr<slot> done(raw);
      auto now = clock_type::now();
      bool again = false;
      {
        std::lock_guard<std::mutex> guard(m);
        if (!status.ok()) failure = status.error_message();
        else latencies.push_back(std::chrono::duration<double, std::micro>(now - done->sent).count());
        again = status.ok() && now < until;
        if (!again && --running == 0) cv.notify_all();
      }
      if (again) send(std::make_unique<slot>());  // a ClientContext serves one call
    });
  };
  for (int i = 0; i < in_flight; ++i) send(std::make_unique<slot>());
  std::unique_lock<std::mutex> lock(m);
  cv.wait(lock, [&] { return running == 0; });
  if (!failure.empty()) throw std::runtime_error("gRPC call failed: " + failure);
  const double secs = std::chrono::duration<double>(clock_type::now() - start).count();
  return {latencies.size() / secs, percentile(latencies, 50), percentile(latencies, 99), percentile(latencies, 99.9),
          latencies.size()};
}

}  // namespace cohort::bench
