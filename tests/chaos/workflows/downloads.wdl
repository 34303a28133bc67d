version 1.0

# URI inputs: a small one the Lambda downloads, a large one a Batch download job downloads,
# both needed by every shard (one download each, the shards waiting for the large one).
workflow downloads {
  input {
    File small
    File large
  }
  scatter (i in range(3)) {
    call count { input: f = small, g = large, i = i }
  }
  output {
    Array[Int] lines = count.lines
  }
}

task count {
  input {
    File f
    File g
    Int i
  }
  command <<<
    cat ~{f} ~{g} | wc -l
  >>>
  output {
    Int lines = read_int(stdout()) + i
  }
}
