version 1.0

import "sub_inner.wdl" as inner

# A sub-workflow called in a scatter; its outputs feed one more call.
workflow sub_main {
  input {
    Array[String] words = ["alpha", "beta", "gamma"]
  }
  scatter (word in words) {
    call inner.shout { input: word = word }
  }
  call join { input: parts = shout.loud }
  output {
    String joined = join.out
    Array[File] files = shout.file
  }
}

task join {
  input {
    Array[String] parts
  }
  command <<<
    echo "~{sep="," parts}"
  >>>
  output {
    String out = read_string(stdout())
  }
}
